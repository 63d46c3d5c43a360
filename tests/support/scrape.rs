//! Reading Prometheus metrics the way a scraper does: encode the registry as
//! text and parse the samples back.

use prometheus_client::registry::Registry;

/// One scrape of a registry: `metric{labels} value` lines by their text
/// before the value.
pub struct Scrape(String);

impl Scrape {
    pub fn of(registry: &Registry) -> Self {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, registry).expect("encode");
        Self(text)
    }

    /// The value of the sample whose name and labels are `series`, e.g.
    /// `leader_election_master_status{name="x"}`.
    pub fn value(&self, series: &str) -> Option<f64> {
        self.0.lines().find_map(|line| {
            let (name, value) = line.rsplit_once(' ')?;
            (name == series).then(|| value.parse().expect("a number"))
        })
    }

    /// The whole text, for failure messages.
    pub fn text(&self) -> &str {
        &self.0
    }
}
