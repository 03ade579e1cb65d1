//! `sluice top`: a live view of a running sluice through its admin
//! endpoint (like `vector top`). Two scrapes of `/metrics` a refresh apart
//! give rates: per source and sink events/s and bytes/s, errors, each
//! stage's queue, each storage sink's breaker and buffer fill, and each
//! service's keep probability and budget spent. At a terminal it redraws
//! until `q` or Ctrl-C; elsewhere it prints one snapshot and exits.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::time::{Duration, Instant};

use anyhow::Context;

/// One scrape: series text (`name{labels}`) → value.
#[derive(Debug, Default, Clone)]
pub struct Scrape {
    values: BTreeMap<String, f64>,
    at: Option<Instant>,
}

impl Scrape {
    /// Read a Prometheus text exposition (sluice's own: one sample a line).
    pub fn parse(body: &str) -> Scrape {
        let values = body
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .filter_map(|l| {
                let (series, value) = l.rsplit_once(' ')?;
                Some((series.to_string(), value.parse().ok()?))
            })
            .collect();
        Scrape {
            values,
            at: Some(Instant::now()),
        }
    }

    /// Every `(label value, value)` of family `name` by label `key`.
    fn by(&self, name: &str, key: &str) -> Vec<(String, f64)> {
        let prefix = format!("sluice_{name}{{");
        self.values
            .iter()
            .filter_map(|(series, v)| {
                let labels = series.strip_prefix(&prefix)?.strip_suffix('}')?;
                Some((label(labels, key)?, *v))
            })
            .collect()
    }

    /// The value of `name` whose label `key` is `value`, summed over the
    /// rest; `None` when there is no such series.
    fn find(&self, name: &str, key: &str, value: &str) -> Option<f64> {
        self.by(name, key)
            .into_iter()
            .filter(|(v, _)| v == value)
            .map(|(_, n)| n)
            .reduce(|a, b| a + b)
    }

    /// As [`Scrape::find`], 0 when absent.
    fn get(&self, name: &str, key: &str, value: &str) -> f64 {
        self.find(name, key, value).unwrap_or(0.0)
    }
}

/// The value of label `key` in `a="x",b="y"` (values without escapes).
fn label(labels: &str, key: &str) -> Option<String> {
    let start = labels.find(&format!("{key}=\""))? + key.len() + 2;
    let end = labels[start..].find('"')? + start;
    Some(labels[start..end].to_string())
}

/// Rows of the view: (section, name, columns).
pub fn rows(before: &Scrape, now: &Scrape) -> Vec<[String; 6]> {
    let secs = match (before.at, now.at) {
        (Some(a), Some(b)) if b > a => (b - a).as_secs_f64(),
        _ => 1.0,
    };
    let rate = |name: &str, key: &str, id: &str| (now.get(name, key, id) - before.get(name, key, id)).max(0.0) / secs;
    let mut out = Vec::new();
    for (id, _) in now.by("events_in_total", "source") {
        out.push([
            "source".into(),
            id.clone(),
            format!("{:.0}/s", rate("events_in_total", "source", &id)),
            human_bytes(rate("bytes_in_total", "source", &id)) + "/s",
            now.find("file_lag_bytes", "source", &id)
                .map_or(String::new(), |lag| format!("lag {}", human_bytes(lag))),
            String::new(),
        ]);
    }
    for (stage, queued) in now.by("stage_queue_batches", "stage") {
        out.push([
            "stage".into(),
            stage.clone(),
            String::new(),
            String::new(),
            format!("queue {queued:.0}"),
            format!("{:.0} panics", now.get("stage_panics_total", "stage", &stage)),
        ]);
    }
    for (id, _) in now.by("events_out_total", "sink") {
        out.push([
            "sink".into(),
            id.clone(),
            format!("{:.0}/s", rate("events_out_total", "sink", &id)),
            human_bytes(rate("bytes_out_total", "sink", &id)) + "/s",
            String::new(),
            String::new(),
        ]);
    }
    for (id, state) in now.by("circuit_state", "sink") {
        let held = now.get("buffer_bytes", "sink", &id);
        let max = now.get("buffer_max_bytes", "sink", &id).max(1.0);
        out.push([
            "sink".into(),
            id.clone(),
            format!("{:.0}/s", rate("sink_sent_events_total", "sink", &id)),
            human_bytes(rate("sink_sent_bytes_total", "sink", &id)) + "/s",
            format!("buffer {:.0}%", held / max * 100.0),
            format!(
                "breaker {} · {:.0} errors",
                match state as i64 {
                    0 => "closed",
                    1 => "OPEN",
                    _ => "half-open",
                },
                now.get("sink_target_errors_total", "sink", &id)
            ),
        ]);
    }
    for (service, ppm) in now.by("budget_keep_probability_ppm", "service") {
        out.push([
            "service".into(),
            service.clone(),
            format!("keep {:.1}%", ppm / 1e4),
            format!(
                "spent {}",
                human_bytes(now.get("budget_spent_bytes", "service", &service))
            ),
            String::new(),
            String::new(),
        ]);
    }
    out
}

fn human_bytes(b: f64) -> String {
    match b {
        b if b >= 1e9 => format!("{:.1} GB", b / 1e9),
        b if b >= 1e6 => format!("{:.1} MB", b / 1e6),
        b if b >= 1e3 => format!("{:.1} kB", b / 1e3),
        b => format!("{b:.0} B"),
    }
}

/// The rows as aligned text.
pub fn render_text(rows: &[[String; 6]]) -> String {
    let mut widths = [0usize; 6];
    for r in rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut s = String::new();
    for r in rows {
        let line: Vec<String> = r.iter().zip(widths).map(|(c, w)| format!("{c:<w$}")).collect();
        s.push_str(line.join("  ").trim_end());
        s.push('\n');
    }
    s
}

async fn scrape(client: &reqwest::Client, url: &str) -> anyhow::Result<Scrape> {
    let body = client
        .get(url)
        .send()
        .await
        .and_then(|r| r.error_for_status())
        .with_context(|| format!("cannot reach sluice's admin endpoint at {url}"))?
        .text()
        .await?;
    Ok(Scrape::parse(&body))
}

/// Run `sluice top` against `address`, refreshing every `every`.
pub async fn run(address: &str, every: Duration) -> anyhow::Result<()> {
    let url = format!("http://{address}/metrics");
    let client = reqwest::Client::builder().timeout(Duration::from_secs(5)).build()?;
    let mut before = scrape(&client, &url).await?;
    if !std::io::stdout().is_terminal() {
        tokio::time::sleep(every).await;
        let now = scrape(&client, &url).await?;
        print!("{}", render_text(&rows(&before, &now)));
        return Ok(());
    }
    let mut terminal = ratatui::init();
    let result = async {
        loop {
            // Waiting on the keyboard is the refresh timer: `q` quits at once.
            if quit_within(every)? {
                return anyhow::Ok(());
            }
            let now = scrape(&client, &url).await?;
            let table = rows(&before, &now);
            terminal.draw(|f| draw(f, &table, address))?;
            before = now;
        }
    }
    .await;
    ratatui::restore();
    result
}

/// Whether `q` or Ctrl-C is pressed within `every`.
fn quit_within(every: Duration) -> anyhow::Result<bool> {
    use ratatui::crossterm::event::{self, Event, KeyCode, KeyModifiers};
    let deadline = Instant::now() + every;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || !event::poll(left)? {
            return Ok(false);
        }
        if let Event::Key(k) = event::read()? {
            let ctrl_c = k.code == KeyCode::Char('c') && k.modifiers.contains(KeyModifiers::CONTROL);
            if k.code == KeyCode::Char('q') || ctrl_c {
                return Ok(true);
            }
        }
    }
}

fn draw(f: &mut ratatui::Frame, table: &[[String; 6]], address: &str) {
    use ratatui::layout::Constraint;
    use ratatui::widgets::{Block, Row, Table};
    let rows = table.iter().map(|r| Row::new(r.iter().cloned()));
    let widths = [
        Constraint::Length(8),
        Constraint::Percentage(20),
        Constraint::Length(12),
        Constraint::Length(14),
        Constraint::Length(16),
        Constraint::Percentage(30),
    ];
    let t = Table::new(rows, widths).block(Block::bordered().title(format!(" sluice top · {address} · q quits ")));
    f.render_widget(t, f.area());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_come_from_two_scrapes_and_states_from_the_last() {
        let t0 = Instant::now();
        let mut before = Scrape::parse(
            "# TYPE sluice_events_in_total counter\nsluice_events_in_total{source=\"in\"} 100\n\
             sluice_bytes_in_total{source=\"in\"} 1000\nsluice_file_lag_bytes{source=\"in\"} 0\n\
             sluice_sink_sent_events_total{sink=\"ch\"} 0\n",
        );
        before.at = Some(t0);
        let mut now = Scrape::parse(
            "sluice_events_in_total{source=\"in\"} 300\nsluice_bytes_in_total{source=\"in\"} 5000\n\
             sluice_file_lag_bytes{source=\"in\"} 2500000\nsluice_stage_queue_batches{stage=\"parse\"} 3\n\
             sluice_circuit_state{sink=\"ch\"} 1\nsluice_buffer_bytes{sink=\"ch\"} 500\n\
             sluice_buffer_max_bytes{sink=\"ch\"} 1000\nsluice_sink_sent_events_total{sink=\"ch\"} 40\n\
             sluice_sink_target_errors_total{sink=\"ch\",kind=\"server\"} 2\n\
             sluice_sink_target_errors_total{sink=\"ch\",kind=\"timeout\"} 1\n\
             sluice_budget_keep_probability_ppm{service=\"api\"} 125000\n\
             sluice_budget_spent_bytes{service=\"api\"} 2048\n",
        );
        now.at = Some(t0 + Duration::from_secs(2));
        assert_eq!(
            render_text(&rows(&before, &now)),
            "source   in     100/s       2.0 kB/s      lag 2.5 MB\n\
             stage    parse                            queue 3     0 panics\n\
             sink     ch     20/s        0 B/s         buffer 50%  breaker OPEN · 3 errors\n\
             service  api    keep 12.5%  spent 2.0 kB\n"
        );
    }
}
