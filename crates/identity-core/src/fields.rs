//! Reading the fields of a request body: every problem collected, each named by its field.

use std::str::FromStr;

use serde_json::Value;
use time::OffsetDateTime;

use crate::body::{NotAnObject, Raw, RawObject, object_from_slice, object_from_value};
use crate::context::{FieldProblem, InvalidInput, Problem};
use crate::timestamp::parse_rfc3339;

/// Reads the fields of one JSON object, collecting every problem instead of stopping at the first.
pub(crate) struct Fields<'a> {
    object: RawObject<'a>,
    problems: Vec<FieldProblem>,
}

/// Identifiers and names never hold control characters; refusing them keeps a newline in a
/// `userId` from forging a line of the audit log.
pub(crate) fn has_control(text: &str) -> bool {
    text.chars().any(char::is_control)
}

pub(crate) fn control_problem() -> Problem {
    Problem::Invalid {
        reason: "contains a control character".into(),
    }
}

pub(crate) fn not_an_object(what: &'static str, problem: Problem) -> InvalidInput {
    InvalidInput {
        what,
        problems: vec![FieldProblem {
            field: "(body)".into(),
            problem,
        }],
    }
}

impl<'a> Fields<'a> {
    pub(crate) fn of_value(
        what: &'static str,
        known: &'static [&'static str],
        value: &'a Value,
    ) -> Result<Self, InvalidInput> {
        match object_from_value(value, known) {
            Some(object) => Ok(Self {
                object,
                problems: Vec::new(),
            }),
            None => Err(not_an_object(
                what,
                Problem::WrongType {
                    expected: "a JSON object",
                },
            )),
        }
    }

    pub(crate) fn of_slice(
        what: &'static str,
        known: &'static [&'static str],
        bytes: &'a [u8],
    ) -> Result<Self, InvalidInput> {
        match object_from_slice(bytes, known) {
            Ok(object) => Ok(Self {
                object,
                problems: Vec::new(),
            }),
            Err(NotAnObject::OtherJson) => Err(not_an_object(
                what,
                Problem::WrongType {
                    expected: "a JSON object",
                },
            )),
            Err(NotAnObject::Syntax(err)) => Err(not_an_object(
                what,
                Problem::Invalid {
                    reason: format!("is not valid JSON ({err})"),
                },
            )),
        }
    }

    pub(crate) fn problem(&mut self, field: &str, problem: Problem) {
        self.problems.push(FieldProblem {
            field: field.into(),
            problem,
        });
    }

    /// Takes a present, non-null value out of the object; `null` counts as absent.
    pub(crate) fn take(&mut self, field: &str) -> Option<Raw<'a>> {
        self.object
            .remove(field)
            .filter(|value| !matches!(value, Raw::Null))
    }

    pub(crate) fn required_str(&mut self, field: &str) -> String {
        match self.take(field) {
            None => self.problem(field, Problem::Missing),
            Some(Raw::Str(text)) if text.trim().is_empty() => self.problem(field, Problem::Empty),
            Some(Raw::Str(text)) if has_control(&text) => self.problem(field, control_problem()),
            Some(Raw::Str(text)) => return text.into_owned(),
            Some(_) => self.problem(
                field,
                Problem::WrongType {
                    expected: "a string",
                },
            ),
        }
        String::new()
    }

    /// An optional string: absent, `null` and `""` all mean absent.
    pub(crate) fn optional_str(&mut self, field: &str) -> Option<String> {
        match self.take(field) {
            None => None,
            Some(Raw::Str(text)) if text.trim().is_empty() => None,
            Some(Raw::Str(text)) if has_control(&text) => {
                self.problem(field, control_problem());
                None
            }
            Some(Raw::Str(text)) => Some(text.into_owned()),
            Some(_) => {
                self.problem(
                    field,
                    Problem::WrongType {
                        expected: "a string",
                    },
                );
                None
            }
        }
    }

    pub(crate) fn required_enum<T: FromStr>(&mut self, field: &str, expected: &str) -> Option<T> {
        let text = self.required_str(field);
        if text.is_empty() {
            return None;
        }
        let parsed = text.parse().ok();
        if parsed.is_none() {
            self.problem(
                field,
                Problem::Invalid {
                    reason: expected.into(),
                },
            );
        }
        parsed
    }

    pub(crate) fn optional_time(&mut self, field: &str) -> Option<OffsetDateTime> {
        let text = self.optional_str(field)?;
        match parse_rfc3339(&text) {
            Ok(at) => Some(at),
            Err(err) => {
                self.problem(
                    field,
                    Problem::Invalid {
                        reason: format!("is {err}"),
                    },
                );
                None
            }
        }
    }

    pub(crate) fn optional_bool(&mut self, field: &str) -> Option<bool> {
        match self.take(field) {
            None => None,
            Some(Raw::Bool(flag)) => Some(flag),
            Some(_) => {
                self.problem(
                    field,
                    Problem::WrongType {
                        expected: "true or false",
                    },
                );
                None
            }
        }
    }

    pub(crate) fn optional_count(&mut self, field: &str, min: u64) -> Option<u64> {
        match self.take(field)? {
            Raw::Unsigned(n) if n >= min => Some(n),
            _ => {
                let expected = if min == 0 {
                    "an integer of 0 or more"
                } else {
                    "an integer of 1 or more"
                };
                self.problem(field, Problem::WrongType { expected });
                None
            }
        }
    }

    pub(crate) fn finish<T>(self, what: &'static str, value: T) -> Result<T, InvalidInput> {
        if self.problems.is_empty() {
            Ok(value)
        } else {
            Err(InvalidInput {
                what,
                problems: self.problems,
            })
        }
    }
}
