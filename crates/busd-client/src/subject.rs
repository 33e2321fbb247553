//! [`IntoSubject`]: what the client's methods accept where a subject is
//! needed, and the check that publishing needs a literal subject.

use std::borrow::Cow;

use busd_proto::Subject;

use crate::error::{Error, ErrorKind};

/// Something that names a subject: `&str`, `String`, or a parsed [`Subject`].
///
/// Text is checked when the method is called, so a malformed subject fails
/// locally with [`ErrorKind::InvalidSubject`] and never reaches the daemon.
///
/// ```no_run
/// use busd_client::Subject;
/// # async fn demo(client: busd_client::Client) -> Result<(), busd_client::Error> {
/// client.publish("weather.today.paris", "21").await?;
/// let subject = Subject::from_static("weather.today.lyon");
/// client.publish(&subject, "19").await?;
/// # Ok(())
/// # }
/// ```
pub trait IntoSubject {
    /// Parses (or clones) into a [`Subject`].
    ///
    /// # Errors
    /// [`ErrorKind::InvalidSubject`] when the text is not a valid subject.
    fn into_subject(self) -> Result<Subject, Error>;

    /// The subject, borrowed where it already is one (the client's
    /// publish path encodes it without taking a clone).
    #[doc(hidden)]
    fn into_subject_cow<'a>(self) -> Result<Cow<'a, Subject>, Error>
    where
        Self: Sized + 'a,
    {
        self.into_subject().map(Cow::Owned)
    }
}

impl IntoSubject for Subject {
    fn into_subject(self) -> Result<Subject, Error> {
        Ok(self)
    }
}

impl IntoSubject for &Subject {
    fn into_subject(self) -> Result<Subject, Error> {
        Ok(self.clone())
    }

    fn into_subject_cow<'a>(self) -> Result<Cow<'a, Subject>, Error>
    where
        Self: 'a,
    {
        Ok(Cow::Borrowed(self))
    }
}

impl IntoSubject for &str {
    fn into_subject(self) -> Result<Subject, Error> {
        Ok(Subject::parse(self)?)
    }
}

impl IntoSubject for String {
    fn into_subject(self) -> Result<Subject, Error> {
        Ok(Subject::parse(self)?)
    }
}

impl IntoSubject for &String {
    fn into_subject(self) -> Result<Subject, Error> {
        Ok(Subject::parse(self.as_str())?)
    }
}

/// Parses `subject` and insists it has no wildcards; `what` names its use
/// ("publish to", "call", "serve") for the error message.
pub(crate) fn literal(subject: impl IntoSubject, what: &str) -> Result<Subject, Error> {
    literal_cow(subject, what).map(Cow::into_owned)
}

/// As [`literal`], borrowing a subject given as one.
pub(crate) fn literal_cow<'a>(
    subject: impl IntoSubject + 'a,
    what: &str,
) -> Result<Cow<'a, Subject>, Error> {
    let subject = subject.into_subject_cow()?;
    if subject.has_wildcards() {
        return Err(Error::new(
            ErrorKind::InvalidSubject,
            format!("cannot {what} {subject}: wildcards are only for subscribing"),
        ));
    }
    Ok(subject)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_pass_and_wildcards_or_malformed_subjects_fail() {
        assert_eq!(
            literal("a.b", "publish to").unwrap(),
            Subject::from_static("a.b")
        );
        assert!(literal(String::from("a.b.c"), "publish to").is_ok());
        for bad in ["a.*", "a.>", ">", "a..b", "", "a b", "a.b*"] {
            let err = literal(bad, "publish to").unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidSubject, "{bad:?}");
        }
        let wildcard = Subject::from_static("a.*");
        let err = literal(&wildcard, "serve").unwrap_err();
        assert!(err.to_string().contains("cannot serve a.*"), "{err}");
    }
}
