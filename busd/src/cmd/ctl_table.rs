//! `busd ctl`'s answers as a person reads them: a list of objects as a
//! table with a column per field, an object as `key  value` lines. `--json`
//! prints the document itself, for scripts.

use serde_json::Value;

/// `doc` as text: a table, aligned lines, or the value itself.
pub(crate) fn render(doc: &Value) -> String {
    match doc {
        Value::Array(rows) if rows.iter().all(Value::is_object) => table(rows),
        Value::Object(fields) => {
            let width = fields.keys().map(String::len).max().unwrap_or(0);
            fields
                .iter()
                .map(|(k, v)| format!("{k:<width$}  {}\n", cell(v)))
                .collect()
        }
        other => format!("{}\n", cell(other)),
    }
}

/// Rows of objects under a header of their fields, in the document's
/// order (serde_json's maps sort by name); a field one row lacks is empty.
fn table(rows: &[Value]) -> String {
    if rows.is_empty() {
        return "(none)\n".to_owned();
    }
    let mut columns: Vec<&str> = Vec::new();
    for row in rows.iter().filter_map(Value::as_object) {
        for key in row.keys() {
            if !columns.contains(&key.as_str()) {
                columns.push(key);
            }
        }
    }
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|row| {
            columns
                .iter()
                .map(|c| row.get(*c).map_or_else(String::new, cell))
                .collect()
        })
        .collect();
    let widths: Vec<usize> = columns
        .iter()
        .enumerate()
        .map(|(i, c)| {
            cells
                .iter()
                .map(|r| r[i].len())
                .chain([c.len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |values: Vec<&str>| {
        let padded: Vec<String> = values
            .iter()
            .zip(&widths)
            .map(|(v, w)| format!("{v:<w$}"))
            .collect();
        format!("{}\n", padded.join("  ").trim_end())
    };
    let mut out = line(
        columns
            .iter()
            .map(|c| c.to_uppercase())
            .collect::<Vec<_>>()
            .iter()
            .map(String::as_str)
            .collect(),
    );
    for row in &cells {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

/// One value in a cell: strings bare, `null` as `-`, lists comma-joined.
fn cell(value: &Value) -> String {
    match value {
        Value::Null => "-".to_owned(),
        Value::String(s) => s.clone(),
        Value::Array(items) if items.is_empty() => "-".to_owned(),
        Value::Array(items) => items.iter().map(cell).collect::<Vec<_>>().join(","),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_list_of_objects_is_a_table_with_a_column_per_field() {
        let doc = json!([
            {"client": 1, "kind": "subscription", "subject": "weather.>", "queue": null},
            {"client": 12, "kind": "service", "subject": "contoso.echo", "queue": "workers"},
        ]);
        assert_eq!(
            render(&doc),
            "CLIENT  KIND          QUEUE    SUBJECT\n\
             1       subscription  -        weather.>\n\
             12      service       workers  contoso.echo\n"
        );
        assert_eq!(render(&json!([])), "(none)\n");
    }

    #[test]
    fn an_object_is_aligned_key_value_lines() {
        let doc = json!({"published": 3, "need_restart": [], "closed": ["a", "b"]});
        assert_eq!(
            render(&doc),
            "closed        a,b\nneed_restart  -\npublished     3\n"
        );
    }
}
