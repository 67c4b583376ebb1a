//! Text log fields written without `core::fmt` where a value is already text.
//!
//! tracing-subscriber's default field formatter sends every field through `write!`, about 900
//! instructions a field; an audit line has fifteen, which made formatting the largest cost of a
//! resolution (measured with callgrind). This one writes `name=value` straight from the `&str`
//! a field records, escaping only a value that holds a control character, so that no value can
//! start a forged line. Other values (numbers, `Debug` and `Display` values) take the usual path.

use std::fmt::{self, Write};

use tracing::field::{Field, Visit};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::FormatFields;
use tracing_subscriber::fmt::format::Writer;

/// The field formatter of the sidecar's text logs; see the [module documentation](self).
#[derive(Debug, Clone, Copy, Default)]
pub struct PlainFields;

impl<'writer> FormatFields<'writer> for PlainFields {
    fn format_fields<R: RecordFields>(&self, writer: Writer<'writer>, fields: R) -> fmt::Result {
        let mut visitor = PlainVisitor {
            writer,
            first: true,
            result: Ok(()),
        };
        fields.record(&mut visitor);
        visitor.result
    }
}

struct PlainVisitor<'writer> {
    writer: Writer<'writer>,
    first: bool,
    result: fmt::Result,
}

impl PlainVisitor<'_> {
    fn field(&mut self, field: &Field, value: impl FnOnce(&mut Writer<'_>) -> fmt::Result) {
        if self.result.is_err() {
            return;
        }
        self.result = (|| {
            if !self.first {
                self.writer.write_char(' ')?;
            }
            self.first = false;
            // The message stands first and bare, as with the default formatter.
            if field.name() != "message" {
                self.writer.write_str(field.name())?;
                self.writer.write_char('=')?;
            }
            value(&mut self.writer)
        })();
    }
}

impl Visit for PlainVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.field(field, |writer| {
            if value.chars().any(char::is_control) {
                write!(writer, "{value:?}")
            } else {
                writer.write_str(value)
            }
        });
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.field(field, |writer| {
            // `Display` values arrive here too; what they write is escaped like a `str` would be.
            let mut text = String::new();
            write!(text, "{value:?}")?;
            if text.chars().any(char::is_control) {
                write!(writer, "{text:?}")
            } else {
                writer.write_str(&text)
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::sync::{Arc, Mutex};

    use super::PlainFields;

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn capture(event: impl FnOnce()) -> String {
        let captured = Captured::default();
        let sink = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .without_time()
            .fmt_fields(PlainFields)
            .with_writer(move || sink.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, event);
        String::from_utf8(captured.0.lock().unwrap().clone()).unwrap()
    }

    #[test]
    fn fields_are_written_plainly_and_control_characters_escaped() {
        let line = capture(|| {
            tracing::info!(user = "alice", forged = "x\nINFO fake line", count = 3, shown = %"a b", "done");
        });
        assert_eq!(line.lines().count(), 1, "{line}");
        assert!(line.contains("done user=alice"), "{line}");
        assert!(line.contains(r#"forged="x\nINFO fake line""#), "{line}");
        assert!(line.contains("count=3"), "{line}");
        assert!(line.contains("shown=a b"), "{line}");
    }

    #[test]
    fn display_values_with_control_characters_are_escaped_too() {
        let line = capture(|| tracing::info!(detail = %"one\rtwo", "x"));
        assert_eq!(line.lines().count(), 1, "{line}");
        assert!(line.contains(r#"detail="one\rtwo""#), "{line}");
    }
}
