//! [`UsageScanner`]: the usage a model API reports in its answer, read as the answer streams
//! by: OpenAI's `usage` (`prompt_tokens`, `completion_tokens`) or Anthropic's (`input_tokens`,
//! `output_tokens`), in a JSON answer or in the events of a streamed one.

use http::{HeaderMap, StatusCode, header};
use identity_router::Usage;
use serde_json::Value;

/// The most of a JSON answer kept to read its usage; a larger one is not read.
const JSON_KEPT: usize = 1024 * 1024;

/// The longest event line kept while looking for usage.
const LINE_KEPT: usize = 256 * 1024;

/// Reads an answer's usage as it streams by.
#[derive(Debug)]
pub(crate) struct UsageScanner {
    form: Form,
    found: Found,
}

#[derive(Debug)]
enum Form {
    /// A JSON answer, kept whole (up to [`JSON_KEPT`]), read at its end.
    Json { kept: Vec<u8>, overflowed: bool },
    /// Server-sent events, read line by line.
    Events { line: Vec<u8>, overlong: bool },
}

/// What the answer said so far: each count is the largest seen (a stream reports input in its
/// first event and output in its last, or both at the end).
#[derive(Debug, Default)]
struct Found {
    model: Option<String>,
    input: Option<u64>,
    output: Option<u64>,
}

impl Found {
    fn take(&mut self, value: &Value) {
        if self.model.is_none() {
            self.model = value
                .get("model")
                .or_else(|| value.pointer("/message/model"))
                .and_then(Value::as_str)
                .map(str::to_owned);
        }
        for usage in [value.get("usage"), value.pointer("/message/usage")]
            .into_iter()
            .flatten()
        {
            let count = |names: [&str; 2]| {
                names
                    .iter()
                    .find_map(|name| usage.get(*name).and_then(Value::as_u64))
            };
            if let Some(input) = count(["prompt_tokens", "input_tokens"]) {
                self.input = Some(self.input.map_or(input, |seen| seen.max(input)));
            }
            if let Some(output) = count(["completion_tokens", "output_tokens"]) {
                self.output = Some(self.output.map_or(output, |seen| seen.max(output)));
            }
        }
    }
}

impl UsageScanner {
    /// A scanner for an answer with `status` and `headers`: a successful JSON or event-stream
    /// answer; `None` for anything else.
    pub(crate) fn for_answer(status: StatusCode, headers: &HeaderMap) -> Option<Self> {
        if !status.is_success() {
            return None;
        }
        let kind = headers
            .get(header::CONTENT_TYPE)?
            .to_str()
            .ok()?
            .split(';')
            .next()?
            .trim()
            .to_ascii_lowercase();
        let form = match kind.as_str() {
            "application/json" => Form::Json {
                kept: Vec::new(),
                overflowed: false,
            },
            "text/event-stream" => Form::Events {
                line: Vec::new(),
                overlong: false,
            },
            _ => return None,
        };
        Some(Self {
            form,
            found: Found::default(),
        })
    }

    /// Reads one chunk of the answer.
    pub(crate) fn feed(&mut self, chunk: &[u8]) {
        match &mut self.form {
            Form::Json { kept, overflowed } => {
                if kept.len() + chunk.len() > JSON_KEPT {
                    *overflowed = true;
                    kept.clear();
                } else if !*overflowed {
                    kept.extend_from_slice(chunk);
                }
            }
            Form::Events { line, overlong } => {
                for piece in chunk.split_inclusive(|byte| *byte == b'\n') {
                    if line.len() + piece.len() > LINE_KEPT {
                        *overlong = true;
                        line.clear();
                    } else {
                        line.extend_from_slice(piece);
                    }
                    if piece.ends_with(b"\n") {
                        if !*overlong {
                            read_event_line(line, &mut self.found);
                        }
                        line.clear();
                        *overlong = false;
                    }
                }
            }
        }
    }

    /// The usage the whole answer reported, if it reported any.
    pub(crate) fn finish(mut self) -> Option<Usage> {
        match &mut self.form {
            Form::Json { kept, overflowed } => {
                if !*overflowed && let Ok(value) = serde_json::from_slice::<Value>(kept) {
                    self.found.take(&value);
                }
            }
            Form::Events { line, overlong } => {
                if !*overlong {
                    read_event_line(line, &mut self.found);
                }
            }
        }
        let Found {
            model,
            input,
            output,
        } = self.found;
        if input.is_none() && output.is_none() {
            return None;
        }
        Some(Usage::new(model, input.unwrap_or(0), output.unwrap_or(0)))
    }
}

/// Reads one `data:` line of an event stream, when it speaks of usage or the model.
fn read_event_line(line: &[u8], found: &mut Found) {
    let Some(data) = line.strip_prefix(b"data:") else {
        return;
    };
    let data = data.trim_ascii();
    // Most events carry neither: they are not parsed.
    let mentions = |needle: &[u8]| data.windows(needle.len()).any(|w| w == needle);
    if data == b"[DONE]"
        || !(mentions(b"\"usage\"") || (found.model.is_none() && mentions(b"\"model\"")))
    {
        return;
    }
    if let Ok(value) = serde_json::from_slice::<Value>(data) {
        found.take(&value);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "a test that fails should stop")]

    use super::*;

    fn scanner(kind: &str) -> UsageScanner {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, kind.parse().unwrap());
        UsageScanner::for_answer(StatusCode::OK, &headers).unwrap()
    }

    #[test]
    fn a_json_answer_is_read_whole_however_it_is_cut() {
        let body = br#"{"id":"c1","model":"gpt-4o-2024-08-06","choices":[],"usage":{"prompt_tokens":12,"completion_tokens":30,"total_tokens":42}}"#;
        for cut in [1, 7, body.len()] {
            let mut scan = scanner("application/json; charset=utf-8");
            for chunk in body.chunks(cut) {
                scan.feed(chunk);
            }
            let usage = scan.finish().unwrap();
            assert_eq!((usage.input_tokens, usage.output_tokens), (12, 30));
            assert_eq!(usage.model.as_deref(), Some("gpt-4o-2024-08-06"));
        }
    }

    #[test]
    fn a_stream_reports_usage_in_its_last_event() {
        let stream = concat!(
            "data: {\"id\":\"c1\",\"model\":\"gpt-4o\",\"choices\":[{\"delta\":{\"content\":\"Hi\"}}],\"usage\":null}\n\n",
            "data: {\"id\":\"c1\",\"model\":\"gpt-4o\",\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":2}}\n\n",
            "data: [DONE]\n\n",
        );
        for cut in [1, 3, 50, stream.len()] {
            let mut scan = scanner("text/event-stream");
            for chunk in stream.as_bytes().chunks(cut) {
                scan.feed(chunk);
            }
            let usage = scan.finish().unwrap();
            assert_eq!(
                (usage.input_tokens, usage.output_tokens),
                (5, 2),
                "cut {cut}"
            );
            assert_eq!(usage.model.as_deref(), Some("gpt-4o"));
        }
    }

    #[test]
    fn anthropic_events_give_input_first_and_output_last() {
        let stream = concat!(
            "event: message_start\n",
            "data: {\"type\":\"message_start\",\"message\":{\"model\":\"claude-sonnet\",\"usage\":{\"input_tokens\":25,\"output_tokens\":1}}}\n\n",
            "event: message_delta\n",
            "data: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":15}}\n\n",
        );
        let mut scan = scanner("text/event-stream");
        scan.feed(stream.as_bytes());
        let usage = scan.finish().unwrap();
        assert_eq!((usage.input_tokens, usage.output_tokens), (25, 15));
        assert_eq!(usage.model.as_deref(), Some("claude-sonnet"));
    }

    #[test]
    fn answers_without_usage_or_of_other_kinds_report_none() {
        let mut scan = scanner("application/json");
        scan.feed(br#"{"data": []}"#);
        assert!(scan.finish().is_none());
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, "text/plain".parse().unwrap());
        assert!(UsageScanner::for_answer(StatusCode::OK, &headers).is_none());
        headers.insert(header::CONTENT_TYPE, "application/json".parse().unwrap());
        assert!(UsageScanner::for_answer(StatusCode::BAD_REQUEST, &headers).is_none());
    }

    #[test]
    fn a_json_answer_too_large_to_keep_is_not_read() {
        let mut scan = scanner("application/json");
        scan.feed(br#"{"usage":{"prompt_tokens":1},"pad":""#);
        scan.feed(&vec![b'x'; JSON_KEPT]);
        scan.feed(br#""}"#);
        assert!(scan.finish().is_none());
    }

    proptest::proptest! {
        /// However the answer is cut into chunks, the same usage is read; and no answer, however
        /// broken, makes the scanner fail.
        #[test]
        fn chunking_never_changes_what_is_read(
            cuts in proptest::collection::vec(1usize..40, 1..30),
            input in 0u64..1_000_000, output in 0u64..1_000_000,
            noise in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200),
        ) {
            let stream = format!(
                "data: {{\"model\":\"m\",\"usage\":null}}\n\n: comment\ndata: {{\"usage\":{{\"prompt_tokens\":{input},\"completion_tokens\":{output}}}}}\n\ndata: [DONE]\n\n"
            );
            let mut scan = scanner("text/event-stream");
            let mut rest = stream.as_bytes();
            for cut in cuts.iter().cycle() {
                if rest.is_empty() {
                    break;
                }
                let (chunk, after) = rest.split_at((*cut).min(rest.len()));
                scan.feed(chunk);
                rest = after;
            }
            let usage = scan.finish().unwrap();
            proptest::prop_assert_eq!((usage.input_tokens, usage.output_tokens), (input, output));
            proptest::prop_assert_eq!(usage.model.as_deref(), Some("m"));

            for kind in ["text/event-stream", "application/json"] {
                let mut scan = scanner(kind);
                for chunk in noise.chunks(7) {
                    scan.feed(chunk);
                }
                let _ = scan.finish();
            }
        }
    }
}
