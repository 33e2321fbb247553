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
    let header: Vec<String> = columns.iter().map(|c| c.to_uppercase()).collect();
    aligned(&header, &cells)
}

/// The columns of `busd ctl bridges`: each header and its field.
const BRIDGE_COLUMNS: [(&str, &str); 13] = [
    ("NAME", "name"),
    ("STATE", "state"),
    ("SERVER", "server"),
    ("OUT", "msgs_out"),
    ("OUT BYTES", "bytes_out"),
    ("IN", "msgs_in"),
    ("IN BYTES", "bytes_in"),
    ("DROPPED OUT", "dropped_out"),
    ("DROPPED IN", "dropped_in"),
    ("BUFFERED", "buffered"),
    ("CALLS OUT", "calls_out"),
    ("CALLS IN", "calls_in"),
    ("RECONNECTS", "reconnects"),
];

/// `busd ctl bridges`' answer: a row per bridge in the daemon's order,
/// columns in a fixed order (a field a row lacks, or `null`, is `-`), then
/// `NAME: error: TEXT` for each bridge that reports an error. A document
/// of another shape is rendered as any other.
pub(crate) fn bridges(doc: &Value) -> String {
    let Some(rows) = doc.as_array().filter(|r| r.iter().all(Value::is_object)) else {
        return render(doc);
    };
    if rows.is_empty() {
        return "(none)\n".to_owned();
    }
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|row| {
            BRIDGE_COLUMNS
                .iter()
                .map(|(_, field)| cell(row.get(*field).unwrap_or(&Value::Null)))
                .collect()
        })
        .collect();
    let header: Vec<String> = BRIDGE_COLUMNS
        .iter()
        .map(|(h, _)| (*h).to_owned())
        .collect();
    let mut out = aligned(&header, &cells);
    for row in rows {
        if let Some(error) = row.get("error").filter(|e| !e.is_null()) {
            let name = row.get("name").map_or_else(|| "-".to_owned(), cell);
            out.push_str(&format!("{name}: error: {}\n", cell(error)));
        }
    }
    out
}

/// `cells` under `header`, each column as wide as its widest cell, two
/// spaces apart, no trailing blanks.
fn aligned(header: &[String], cells: &[Vec<String>]) -> String {
    let widths: Vec<usize> = header
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
    let mut out = line(header.iter().map(String::as_str).collect());
    for row in cells {
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
    fn bridges_are_a_table_in_a_fixed_order_then_their_errors() {
        let doc = json!([
            {"name": "fleet", "pfn": "Busd.Bridge.Fleet_0000000000000", "state": "connected",
             "server": "10.1.0.1:4222", "error": null, "msgs_out": 10, "bytes_out": 1200,
             "msgs_in": 3, "bytes_in": 99, "dropped_out": 0, "dropped_in": 0, "buffered": 0,
             "calls_out": 2, "calls_in": 1, "reconnects": 0},
            {"name": "lab", "pfn": "Busd.Bridge.Lab_0000000000000", "state": "closed",
             "server": null, "error": "no credentials file", "msgs_out": 0, "bytes_out": 0,
             "msgs_in": 0, "bytes_in": 0, "dropped_out": 5, "dropped_in": 0, "buffered": 0,
             "calls_out": 0, "calls_in": 0, "reconnects": 0},
        ]);
        assert_eq!(
            bridges(&doc),
            "NAME   STATE      SERVER         OUT  OUT BYTES  IN  IN BYTES  DROPPED OUT  \
             DROPPED IN  BUFFERED  CALLS OUT  CALLS IN  RECONNECTS\n\
             fleet  connected  10.1.0.1:4222  10   1200       3   99        0            \
             0           0         2          1         0\n\
             lab    closed     -              0    0          0   0         5            \
             0           0         0          0         0\n\
             lab: error: no credentials file\n"
        );
        assert_eq!(bridges(&json!([])), "(none)\n");
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
