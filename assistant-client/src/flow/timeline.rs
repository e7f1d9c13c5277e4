//! `--timeline`: a chart of a story's flow, written when the call ends.
//!
//! Two lines, bytes received and bytes typed over time; the gap between
//! them is what sits in buffers. Behind them, bands mark the waits:
//! - the client waiting for the server after the greeting (the server's
//!   think-time) and between chunks (its chunk delays);
//! - the server waiting for the client, its window full (a flow-control
//!   stall). The received line is flat there.
//!
//! The data is sampled every 20 ms; `FILE.json` gets it as JSON, for
//! plotting elsewhere, and `FILE.svg` gets the chart, drawn with
//! `plotters`.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use plotters::prelude::*;
use serde::Serialize;

use super::{Snapshot, Waiting};
use crate::ClientError;

/// The counts at one moment of the story.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub(crate) struct Sample {
    /// Seconds since the story began.
    pub(crate) at: f64,
    pub(crate) received: u64,
    pub(crate) typed: u64,
    pub(crate) messages: u64,
    pub(crate) waiting: Waiting,
}

impl Sample {
    pub(crate) fn new(at: Duration, snapshot: Snapshot) -> Self {
        Self {
            at: at.as_secs_f64(),
            received: snapshot.received,
            typed: snapshot.typed,
            messages: snapshot.messages,
            waiting: snapshot.waiting,
        }
    }
}

/// What a band on the chart marks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Pause {
    /// The client waits for the server's first story chunk after the
    /// greeting: the server's think-time.
    ThinkTime,
    /// The client waits for the server between chunks: its chunk delay.
    ChunkDelay,
    /// The server waits for the client: its window is full.
    Stall,
}

impl Pause {
    fn label(self) -> &'static str {
        match self {
            Pause::ThinkTime => "server thinking (--think-time)",
            Pause::ChunkDelay => "server pausing (--chunk-delay)",
            Pause::Stall => "server stalled: client's window full",
        }
    }

    fn color(self) -> RGBColor {
        match self {
            Pause::ThinkTime => RGBColor(120, 120, 120),
            Pause::ChunkDelay => RGBColor(70, 160, 220),
            Pause::Stall => RGBColor(230, 80, 60),
        }
    }
}

/// One wait, from `from` to `to` seconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub(crate) struct Band {
    pub(crate) pause: Pause,
    pub(crate) from: f64,
    pub(crate) to: f64,
}

/// The waits in `samples`: each run of samples waiting the same way. A
/// wait for the server ends when a message comes, and a stall when bytes
/// come, even if the next wait begins before the next sample.
///
/// A wait for the server before the first message is the call getting
/// started, not a pause of the server's, and is not marked.
pub(crate) fn bands(samples: &[Sample]) -> Vec<Band> {
    let mut bands: Vec<Band> = Vec::new();
    let mut open: Option<Band> = None;
    let mut previous: Option<&Sample> = None;
    for sample in samples {
        let pause = match sample.waiting {
            Waiting::ForClient => Some(Pause::Stall),
            Waiting::ForServer if sample.messages == 1 => Some(Pause::ThinkTime),
            Waiting::ForServer if sample.messages > 1 => Some(Pause::ChunkDelay),
            Waiting::ForServer | Waiting::Nobody => None,
        };
        // What ends a wait, even with no sample between it and the next.
        let ended = previous.is_some_and(|previous| match pause {
            Some(Pause::Stall) => sample.received != previous.received,
            _ => sample.messages != previous.messages,
        });
        previous = Some(sample);
        match &mut open {
            Some(band) if Some(band.pause) == pause && !ended => band.to = sample.at,
            _ => {
                // A wait ends where the next sample shows something else.
                if let Some(mut band) = open.take() {
                    band.to = sample.at;
                    bands.push(band);
                }
                open = pause.map(|pause| Band {
                    pause,
                    from: sample.at,
                    to: sample.at,
                });
            }
        }
    }
    bands.extend(open);
    bands
}

/// Checks `--timeline`'s file name: it must end in `.svg` or `.json`.
pub(crate) fn parse_path(text: &str) -> Result<PathBuf, String> {
    match Path::new(text).extension().and_then(|ext| ext.to_str()) {
        Some("svg" | "json") => Ok(PathBuf::from(text)),
        _ => Err(format!(
            "`{text}` must end in .svg (a chart) or .json (its data)"
        )),
    }
}

/// The data the chart shows, as `FILE.json` holds it.
#[derive(Debug, Serialize)]
struct Chart<'a> {
    samples: &'a [Sample],
    bands: Vec<Band>,
}

/// Writes the chart of `samples` to `path`: an SVG picture, or JSON data.
pub(crate) fn write(path: &Path, samples: &[Sample]) -> Result<(), ClientError> {
    let chart = Chart {
        samples,
        bands: bands(samples),
    };
    let failed = |reason: String| ClientError::Timeline {
        path: path.to_owned(),
        reason,
    };
    if path.extension().is_some_and(|ext| ext == "json") {
        let json = serde_json::to_vec_pretty(&chart).map_err(|err| failed(err.to_string()))?;
        std::fs::write(path, json).map_err(|err| failed(err.to_string()))
    } else {
        draw(path, &chart).map_err(|err| failed(err.to_string()))
    }
}

/// Draws `chart` as an SVG picture at `path`.
fn draw(path: &Path, chart: &Chart<'_>) -> Result<(), Box<dyn std::error::Error>> {
    let seconds = chart.samples.last().map_or(1.0, |last| last.at).max(0.1);
    let most = chart
        .samples
        .iter()
        .map(|sample| sample.received.max(sample.typed))
        .max()
        .unwrap_or(0)
        .max(1024);
    // Headroom above the lines for the legend.
    let top = most + most / 2;

    let root = SVGBackend::new(path, (1000, 560)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut plot = ChartBuilder::on(&root)
        .caption("TellStory: bytes received and typed", ("sans-serif", 22))
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(80)
        .build_cartesian_2d(0.0..seconds, 0..top)?;
    plot.configure_mesh()
        .x_desc("seconds since the story was asked for")
        .y_desc("bytes")
        .y_label_formatter(&|bytes| super::show::thousands(*bytes))
        .light_line_style(WHITE.mix(0.0))
        .draw()?;

    for pause in [Pause::ThinkTime, Pause::ChunkDelay, Pause::Stall] {
        let color = pause.color();
        let bands = chart.bands.iter().filter(|band| band.pause == pause);
        plot.draw_series(bands.map(|band| {
            // At least a pixel wide, so a short pause still shows; a gap
            // of a pixel before the next, so pauses back to back show as
            // several.
            let pixel = seconds / 1000.0;
            let to = (band.to - pixel).max(band.from + pixel);
            Rectangle::new([(band.from, 0), (to, top)], color.mix(0.25).filled())
        }))?
        .label(pause.label())
        .legend(move |(x, y)| {
            Rectangle::new([(x, y - 6), (x + 18, y + 6)], color.mix(0.4).filled())
        });
    }

    let received = RGBColor(30, 90, 200);
    let typed = RGBColor(240, 130, 20);
    // Received is drawn wider, under typed: where nothing waits between
    // them, both still show.
    plot.draw_series(LineSeries::new(
        chart.samples.iter().map(|s| (s.at, s.received)),
        received.stroke_width(5),
    ))?
    .label("bytes received")
    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], received.stroke_width(5)));
    plot.draw_series(LineSeries::new(
        chart.samples.iter().map(|s| (s.at, s.typed)),
        typed.stroke_width(2),
    ))?
    .label("bytes typed")
    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], typed.stroke_width(2)));

    plot.configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.3))
        .draw()?;
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(at: f64, received: u64, messages: u64, waiting: Waiting) -> Sample {
        Sample {
            at,
            received,
            typed: 0,
            messages,
            waiting,
        }
    }

    #[test]
    fn runs_of_waiting_become_bands_named_by_what_came_before() {
        use Waiting::*;
        let samples = [
            sample(0.00, 0, 0, ForServer), // the call starting: not marked
            sample(0.02, 60, 1, ForServer),
            sample(0.04, 60, 1, ForServer),
            sample(0.06, 1100, 2, Nobody),
            sample(0.08, 1100, 2, ForServer),
            sample(0.10, 2200, 3, Nobody),
            sample(0.12, 65_596, 60, ForClient),
            // The client reads on while the server is stalled.
            sample(0.14, 65_596, 61, ForClient),
            // Two chunk delays, with the chunk between them typed at once.
            sample(0.16, 66_632, 62, ForServer),
            sample(0.18, 67_668, 63, ForServer),
            sample(0.20, 67_668, 63, ForServer),
        ];
        assert_eq!(
            bands(&samples),
            [
                Band {
                    pause: Pause::ThinkTime,
                    from: 0.02,
                    to: 0.06
                },
                Band {
                    pause: Pause::ChunkDelay,
                    from: 0.08,
                    to: 0.10
                },
                Band {
                    pause: Pause::Stall,
                    from: 0.12,
                    to: 0.16
                },
                Band {
                    pause: Pause::ChunkDelay,
                    from: 0.16,
                    to: 0.18
                },
                Band {
                    pause: Pause::ChunkDelay,
                    from: 0.18,
                    to: 0.20
                },
            ]
        );
        assert_eq!(bands(&[]), []);
    }

    #[test]
    fn the_file_says_what_to_write() {
        assert!(parse_path("flow.svg").is_ok());
        assert!(parse_path("out/flow.json").is_ok());
        for bad in ["flow", "flow.png", "svg"] {
            assert!(parse_path(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_chart_is_an_svg_with_both_lines_and_the_legend() {
        use Waiting::*;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("flow.svg");
        let samples = [
            sample(0.0, 60, 1, ForServer),
            sample(1.0, 60, 1, ForServer),
            sample(2.0, 65_596, 60, ForClient),
            sample(3.0, 66_632, 61, Nobody),
        ];
        write(&path, &samples).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..100]);
        for text in [
            "bytes received",
            "bytes typed",
            "server thinking (--think-time)",
            "server stalled: client&apos;s window full",
        ] {
            assert!(svg.contains(text), "{text} missing");
        }
        // Each line, and its mark in the legend, in its colour.
        assert_eq!(svg.matches(r##"stroke="#1E5AC8""##).count(), 2);
        assert_eq!(svg.matches(r##"stroke="#F08214""##).count(), 2);
    }
}
