//! `natsbench table FILE`: the busd/NATS ratios of a `compare.sh` results
//! file, then the busd/iceoryx2 ratios of the workloads iceoryx2 ran.
//!
//! Rows are grouped by workload, size and fan; with several rounds the
//! median of each figure is used. Throughput ratios are busd ÷ NATS
//! (higher is better for busd); latency ratios are busd ÷ NATS too (lower
//! is better). Each cell also shows what was lost, since a figure bought
//! with loss is not comparable. The second table sets busd over shm (with
//! and without `--in-place`) and over unix beside iceoryx2, brokerless
//! shared memory, in throughput and in CPU time and minor faults per
//! message sent (busd's counting its daemon's share): ratios busd ÷
//! iceoryx2 again, so below 1 is better for busd in those two. The raw
//! round trips `compare.sh` measured in the same run (the `floors`
//! example) follow the tables, since no broker answers a request faster
//! than two of them, and so does what filling and copying 1 MiB cost (the
//! `copy_floor` example): the floor under busd's one copy per message.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use anyhow::Context as _;
use busd_bench::Summary;

/// A workload as compared: name, payload size, fan shape.
type Key = (String, usize, String);

/// The results of each workload, every round of every column.
type Groups = BTreeMap<Key, Vec<Summary>>;

/// Each floor's measured round trips: its p50s and its p99s, in µs.
type Floors = BTreeMap<String, (Vec<f64>, Vec<f64>)>;

/// Each round's cost of filling and of copying one payload, in µs, and
/// the payload's size.
type CopyFloors = Vec<(f64, f64, f64)>;

/// A figure of a result: its label, how to read it, and its decimals.
type Metric = (&'static str, fn(&Summary) -> Option<f64>, usize);

/// Request/reply: latency percentiles and the request rate.
const REQREP_METRICS: [Metric; 3] = [
    ("p50 µs", |s| s.p50_us, 1),
    ("p99 µs", |s| s.p99_us, 1),
    ("req/s", |s| Some(s.msgs_per_s), 1),
];

/// Pub/sub of large payloads: bytes per second.
const LARGE_METRICS: [Metric; 1] = [("MB/s", |s| Some(s.mb_per_s), 1)];

/// Pub/sub of small payloads: messages per second.
const SMALL_METRICS: [Metric; 1] = [("msgs/s", |s| Some(s.msgs_per_s), 1)];

/// Beside iceoryx2: bytes per second, and what each message sent cost.
const IOX2_METRICS: [Metric; 3] = [
    ("MB/s", |s| Some(s.mb_per_s), 1),
    ("CPU µs/msg", |s| s.cpu_us_per_msg, 1),
    ("minflt/msg", |s| s.minflt_per_msg, 2),
];

/// A column: which results it takes, by system, transport and whether
/// busd's publishers wrote in place.
#[derive(Debug, Clone, Copy)]
struct Column {
    system: &'static str,
    transport: &'static str,
    in_place: bool,
}

const fn column(system: &'static str, transport: &'static str, in_place: bool) -> Column {
    Column {
        system,
        transport,
        in_place,
    }
}

/// The NATS table's columns, NATS first: the others are divided by it.
const COLUMNS: [Column; 4] = [
    column("nats", "tcp", false),
    column("busd", "tcp", false),
    column("busd", "unix", false),
    column("busd", "shm", false),
];

/// The iceoryx2 table's columns, iceoryx2 first: the others are divided by it.
const IOX2_COLUMNS: [Column; 4] = [
    column("iceoryx2", "shm", false),
    column("busd", "shm", false),
    column("busd", "shm", true),
    column("busd", "unix", false),
];

/// Reads a JSON-lines results file (lines that are not results, such as
/// the machine header, are skipped) and renders the ratio table.
///
/// # Errors
/// When the file cannot be read or a result line is malformed.
pub(crate) fn render(path: &str) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {path}"))?;
    render_text(&text, path)
}

/// As [`render`], for the contents of the file named `path`.
fn render_text(text: &str, path: &str) -> anyhow::Result<String> {
    let (groups, floors, copy_floors) = read_results(text, path)?;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| workload | size | fan | metric | NATS | busd tcp | tcp/NATS | busd unix | unix/NATS | busd shm | shm/NATS |"
    );
    let _ = writeln!(out, "|---|---:|---|---|---:|---:|---:|---:|---:|---:|---:|");
    for (key, rows) in &groups {
        for metric in metrics(&key.0, key.1) {
            write_row(&mut out, key, metric, &COLUMNS, rows);
        }
    }
    write_iox2_table(&mut out, &groups);
    write_floors(&mut out, floors);
    write_copy_floors(&mut out, copy_floors);
    Ok(out)
}

/// The workloads iceoryx2 ran, beside busd over shm and unix, if it ran any.
fn write_iox2_table(out: &mut String, groups: &Groups) {
    let ran = |rows: &[Summary]| rows.iter().any(|s| s.system == IOX2_COLUMNS[0].system);
    if !groups.values().any(|rows| ran(rows)) {
        return;
    }
    out.push_str(
        "\nBeside iceoryx2 (brokerless shared memory; CPU and minor faults per message sent, \
         of every process of the run, busd's daemon included):\n\n",
    );
    let _ = writeln!(
        out,
        "| workload | size | fan | metric | iceoryx2 | busd shm | shm/iox2 | busd shm in-place | in-place/iox2 | busd unix | unix/iox2 |"
    );
    let _ = writeln!(out, "|---|---:|---|---|---:|---:|---:|---:|---:|---:|---:|");
    for (key, rows) in groups.iter().filter(|(_, rows)| ran(rows)) {
        for metric in &IOX2_METRICS {
            write_row(out, key, metric, &IOX2_COLUMNS, rows);
        }
    }
}

/// Sorts the lines of a results file into the bench results of each
/// workload and the round trips of each floor; other lines are skipped.
fn read_results(text: &str, path: &str) -> anyhow::Result<(Groups, Floors, CopyFloors)> {
    let mut groups = Groups::new();
    let mut floors = Floors::new();
    let mut copy_floors = CopyFloors::new();
    for (n, line) in text.lines().enumerate() {
        let value: serde_json::Value =
            serde_json::from_str(line).with_context(|| format!("{path}:{}: not JSON", n + 1))?;
        if let Some(floor) = value.get("floor").and_then(|f| f.as_str()) {
            let figures = floors.entry(floor.to_owned()).or_default();
            figures
                .0
                .extend(value.get("p50_us").and_then(serde_json::Value::as_f64));
            figures
                .1
                .extend(value.get("p99_us").and_then(serde_json::Value::as_f64));
            continue;
        }
        if let Some(c) = value.get("copy_floor") {
            let f = |k: &str| c.get(k).and_then(serde_json::Value::as_f64);
            if let (Some(fill), Some(copy), Some(size)) = (f("fill_us"), f("copy_us"), f("size")) {
                copy_floors.push((fill, copy, size));
            }
            continue;
        }
        if value.get("workload").is_none() {
            continue;
        }
        let s: Summary = serde_json::from_value(value)
            .with_context(|| format!("{path}:{}: not a bench result", n + 1))?;
        let fan = match s.workload.as_str() {
            "reqrep" => format!("{}:{}", s.requesters, s.responders),
            _ => format!("{}→{}", s.pubs, s.subs),
        };
        groups
            .entry((s.workload.clone(), s.size, fan))
            .or_default()
            .push(s);
    }
    Ok((groups, floors, copy_floors))
}

/// The figures compared for a workload of payloads of `size` bytes.
fn metrics(workload: &str, size: usize) -> &'static [Metric] {
    if workload == "reqrep" {
        &REQREP_METRICS
    } else if size >= 16 * 1024 {
        &LARGE_METRICS
    } else {
        &SMALL_METRICS
    }
}

/// Writes one row of a workload: each column's median of `metric` and
/// the ratio of each later column to the first.
fn write_row(
    out: &mut String,
    (workload, size, fan): &Key,
    &(metric, get, decimals): &Metric,
    columns: &[Column],
    rows: &[Summary],
) {
    let cells: Vec<Option<(f64, u64)>> =
        columns.iter().map(|c| column_cell(rows, c, get)).collect();
    let base = cells[0].map(|(v, _)| v);
    let _ = write!(
        out,
        "| {workload} | {size} | {fan} | {metric} | {} ",
        cell(cells[0], decimals)
    );
    for c in &cells[1..] {
        let ratio = match (c, base) {
            (Some((v, _)), Some(b)) if b > 0.0 => format!("{:.2}×", v / b),
            _ => "-".into(),
        };
        let _ = write!(out, "| {} | {ratio} ", cell(*c, decimals));
    }
    out.push_str("|\n");
}

/// The median of a figure over the rounds of one column, with the
/// messages those rounds lost.
fn column_cell(
    rows: &[Summary],
    column: &Column,
    get: fn(&Summary) -> Option<f64>,
) -> Option<(f64, u64)> {
    let picked: Vec<&Summary> = rows
        .iter()
        .filter(|s| {
            s.system == column.system
                && s.transport == column.transport
                && s.in_place == column.in_place
        })
        .collect();
    let values: Vec<f64> = picked.iter().filter_map(|s| get(s)).collect();
    median(values).map(|v| (v, picked.iter().map(|s| s.lost).sum()))
}

/// Writes the floors' median round trips after the table, if the run measured any.
fn write_floors(out: &mut String, floors: Floors) {
    if floors.is_empty() {
        return;
    }
    out.push_str(
        "\nFloors in this run (a 128 B round trip between two processes, no broker; \
         a request/reply through a broker is two of them), p50 / p99 µs:",
    );
    for (name, (p50, p99)) in floors {
        let f = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.1}"));
        let _ = write!(out, " {name} {} / {};", f(median(p50)), f(median(p99)));
    }
    out.push('\n');
}

/// Writes the median cost of filling and copying a payload, if the run
/// measured it, and what follows: the CPU floor of a message (the
/// publisher's fill and the daemon's one copy) and the most a 1→4 fan-out
/// delivers (the daemon copies once for the set while the publisher fills
/// the next).
fn write_copy_floors(out: &mut String, copy_floors: CopyFloors) {
    let fill = median(copy_floors.iter().map(|c| c.0).collect());
    let copy = median(copy_floors.iter().map(|c| c.1).collect());
    let (Some(fill), Some(copy), Some(&(_, _, size))) = (fill, copy, copy_floors.first()) else {
        return;
    };
    let _ = writeln!(
        out,
        "\nCopy floor in this run ({size} B payloads, no daemon, no rings): filling one takes \
         {fill:.1} µs and copying it {copy:.1} µs, so a message costs at least {:.1} µs of CPU \
         and a 1→4 fan-out delivers at most {:.0} MB/s.",
        fill + copy,
        4.0 * size / fill.max(copy)
    );
}

/// A figure to `decimals` places, with its losses when there were any.
fn cell(c: Option<(f64, u64)>, decimals: usize) -> String {
    match c {
        None => "-".into(),
        Some((v, 0)) => format!("{v:.decimals$}"),
        Some((v, lost)) => format!("{v:.decimals$} (lost {lost})"),
    }
}

fn median(mut values: Vec<f64>) -> Option<f64> {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(values[n / 2]),
        _ => Some((values[n / 2 - 1] + values[n / 2]) / 2.0),
    }
}

#[cfg(test)]
mod tests {
    use super::render_text;

    #[test]
    fn ratios_take_medians_and_the_floors_follow() {
        let result = |system: &str, transport: &str, p50: f64| {
            format!(
                r#"{{"system":"{system}","workload":"reqrep","transport":"{transport}","size":128,"count":10,"procs":true,"pubs":0,"subs":0,"requesters":1,"responders":1,"sent":10,"received":10,"expected":10,"lost":0,"out_of_order":0,"disconnected":0,"elapsed_s":1.0,"msgs_per_s":10.0,"mb_per_s":0.0,"p50_us":{p50},"p90_us":1.0,"p99_us":{p50},"p999_us":1.0}}"#
            )
        };
        let lines = [
            r#"{"machine":{"cores":2}}"#.to_owned(),
            r#"{"floor":"unix","size":128,"rounds":10,"p50_us":50.0,"p99_us":90.0,"mean_us":55.0}"#
                .to_owned(),
            r#"{"floor":"unix","size":128,"rounds":10,"p50_us":70.0,"p99_us":110.0,"mean_us":75.0}"#
                .to_owned(),
            result("nats", "tcp", 200.0),
            result("busd", "unix", 90.0),
            result("busd", "unix", 110.0),
            result("busd", "unix", 500.0),
        ];
        let table = render_text(&lines.join("\n"), "test").unwrap();
        assert!(
            table.contains("| reqrep | 128 | 1:1 | p50 µs | 200.0 | - | - | 110.0 | 0.55× |"),
            "{table}"
        );
        assert!(table.contains("unix 60.0 / 100.0;"), "{table}");
        assert!(!table.contains("Copy floor"), "none measured: {table}");
        assert!(
            !table.contains("iceoryx2"),
            "no iceoryx2 table without its results: {table}"
        );
    }

    #[test]
    fn iceoryx2_gets_a_table_of_its_own_with_busd_in_place_apart() {
        let result = |system: &str, transport: &str, extra: &str, mb: f64, cpu: f64| {
            format!(
                r#"{{"system":"{system}","workload":"pubsub","transport":"{transport}","size":1048576,"count":10,"procs":true,"pubs":1,"subs":1,"requesters":0,"responders":0,"sent":10,"received":10,"expected":10,"lost":0,"out_of_order":0,"disconnected":0,"elapsed_s":1.0,"msgs_per_s":10.0,"mb_per_s":{mb},"cpu_us_per_msg":{cpu},"minflt_per_msg":0.25{extra}}}"#
            )
        };
        let lines = [
            result("nats", "tcp", "", 100.0, 900.0),
            result("iceoryx2", "shm", r#","buffer":16"#, 10000.0, 50.0),
            result("busd", "shm", "", 4000.0, 200.0),
            result("busd", "shm", r#","in_place":true"#, 8000.0, 100.0),
            result("busd", "unix", "", 2000.0, 400.0),
            r#"{"copy_floor":{"size":1048576,"count":10,"fill_us":40.0,"copy_us":60.0}}"#
                .to_owned(),
            r#"{"copy_floor":{"size":1048576,"count":10,"fill_us":50.0,"copy_us":50.0}}"#
                .to_owned(),
        ];
        let table = render_text(&lines.join("\n"), "test").unwrap();
        // The NATS table takes busd shm without in-place.
        assert!(
            table.contains("| pubsub | 1048576 | 1→1 | MB/s | 100.0 | - | - | 2000.0 | 20.00× | 4000.0 | 40.00× |"),
            "{table}"
        );
        let iox2 = table
            .split("Beside iceoryx2")
            .nth(1)
            .expect("an iceoryx2 table");
        assert!(
            iox2.contains("| pubsub | 1048576 | 1→1 | MB/s | 10000.0 | 4000.0 | 0.40× | 8000.0 | 0.80× | 2000.0 | 0.20× |"),
            "{table}"
        );
        assert!(
            iox2.contains("| CPU µs/msg | 50.0 | 200.0 | 4.00× | 100.0 | 2.00× | 400.0 | 8.00× |"),
            "{table}"
        );
        assert!(
            iox2.contains("| minflt/msg | 0.25 | 0.25 | 1.00× |"),
            "{table}"
        );
        assert!(
            table.contains("filling one takes 45.0 µs and copying it 55.0 µs, so a message costs at least 100.0 µs of CPU and a 1→4 fan-out delivers at most 76260 MB/s"),
            "medians of the rounds: {table}"
        );
    }
}
