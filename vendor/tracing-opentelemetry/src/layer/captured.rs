//! The creation fields of a root dropped at creation, which `set_parent`
//! may still build ([`EarlyDecision::DropUnlessReparented`]).
//!
//! Almost no such span is ever built, yet each needs its fields kept: as
//! attributes that would be an allocation per text value, one for the list
//! and one for the box. They are kept here instead as they came, in buffers
//! inline in one box, and turned into attributes only if the span is built,
//! by replaying them into the same visitor a built span's fields go
//! through.
//!
//! [`EarlyDecision::DropUnlessReparented`]: crate::EarlyDecision::DropUnlessReparented

use std::fmt::{self, Write as _};
use std::ops::Range;

use opentelemetry::trace::{SpanBuilder, Status};
use smallvec::SmallVec;
use tracing_core::field::{Field, Visit};
use tracing_core::span::Attributes;
use tracing_core::Metadata;

use super::{SemConvConfig, SpanAttributeVisitor, SpanBuilderUpdates};

/// Values kept without spilling to the heap: a root's creation fields.
const INLINE_VALUES: usize = 4;
/// Text kept without spilling to the heap (every value that is text or
/// formatted, together).
const INLINE_TEXT: usize = 64;

/// The creation fields of a dropped root (boxed: every dropped span's data
/// has room for them, and only roots under a ratio fill it).
#[derive(Debug)]
pub(crate) enum KeptFields {
    /// As they came (every field but errors).
    Captured(Box<CapturedFields>),
    /// As attributes: a field held an error, whose source chain the
    /// attribute visitor walks at once; or what a span being built had been
    /// given when `set_parent` dropped it.
    Recorded(Box<SpanBuilderUpdates>),
}

impl KeptFields {
    /// Keeps `attrs`' fields as the attribute visitor would record them.
    pub(crate) fn keep(attrs: &Attributes<'_>, sem_conv_config: SemConvConfig) -> KeptFields {
        let mut captured = Box::new(CapturedFields {
            metadata: attrs.metadata(),
            sem_conv_config,
            values: SmallVec::new(),
            text: SmallVec::new(),
            has_error: false,
        });
        attrs.record(&mut *captured);
        if !captured.has_error {
            return KeptFields::Captured(captured);
        }
        let mut updates = SpanBuilderUpdates::default();
        attrs.record(&mut SpanAttributeVisitor {
            span_builder_updates: &mut updates,
            sem_conv_config,
        });
        KeptFields::Recorded(Box::new(updates))
    }

    /// What a span being built was given so far, for a span dropped after
    /// all when `set_parent` put it under a parent that is not sampled: its
    /// name, kind, attributes and status. Its start time, events and links
    /// are not kept: a dropped span has none, and one built again later
    /// starts then.
    pub(crate) fn from_builder(builder: SpanBuilder, status: Status) -> KeptFields {
        KeptFields::Recorded(Box::new(SpanBuilderUpdates {
            name: Some(builder.name),
            span_kind: builder.span_kind,
            status: Some(status),
            attributes: builder.attributes,
        }))
    }

    /// The fields as the attribute visitor records them.
    pub(crate) fn to_updates(&self) -> SpanBuilderUpdates {
        match self {
            KeptFields::Captured(captured) => captured.to_updates(),
            KeptFields::Recorded(updates) => (**updates).clone(),
        }
    }
}

/// Field values in the order they were recorded, text in one buffer.
pub(crate) struct CapturedFields {
    metadata: &'static Metadata<'static>,
    sem_conv_config: SemConvConfig,
    /// Each value with its field's index in the callsite's field set.
    values: SmallVec<[(usize, Captured); INLINE_VALUES]>,
    /// UTF-8: only whole `str`s and formatted text are written to it.
    text: SmallVec<[u8; INLINE_TEXT]>,
    /// A field held an error: [`KeptFields::Recorded`] keeps them instead.
    has_error: bool,
}

impl fmt::Debug for CapturedFields {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CapturedFields")
            .field("span", &self.metadata.name())
            .field("values", &self.values.len())
            .finish_non_exhaustive()
    }
}

/// One value as it reached the visitor.
#[derive(Debug, Clone)]
enum Captured {
    Bool(bool),
    I64(i64),
    U64(u64),
    F64(f64),
    /// A `str`, at this range of the text.
    Str(Range<usize>),
    /// A value recorded through `Debug`, formatted, at this range.
    Debug(Range<usize>),
}

impl CapturedFields {
    fn push(&mut self, field: &Field, value: Captured) {
        self.values.push((field.index(), value));
    }

    /// Writes `value` into the text, returning where it is.
    fn write_text(&mut self, write: impl FnOnce(&mut TextBuffer<'_>)) -> Range<usize> {
        let start = self.text.len();
        write(&mut TextBuffer(&mut self.text));
        start..self.text.len()
    }

    fn text(&self, range: &Range<usize>) -> Option<&str> {
        self.text
            .get(range.clone())
            .and_then(|bytes| std::str::from_utf8(bytes).ok())
    }

    /// Replays the values, in their order, into the attribute visitor.
    fn to_updates(&self) -> SpanBuilderUpdates {
        let mut updates = SpanBuilderUpdates::default();
        let mut visitor = SpanAttributeVisitor {
            span_builder_updates: &mut updates,
            sem_conv_config: self.sem_conv_config,
        };
        let fields = self.metadata.fields();
        for (index, value) in &self.values {
            let Some(field) = fields.iter().nth(*index) else {
                continue;
            };
            match value {
                Captured::Bool(v) => visitor.record_bool(&field, *v),
                Captured::I64(v) => visitor.record_i64(&field, *v),
                Captured::U64(v) => visitor.record_u64(&field, *v),
                Captured::F64(v) => visitor.record_f64(&field, *v),
                Captured::Str(range) => {
                    if let Some(text) = self.text(range) {
                        visitor.record_str(&field, text);
                    }
                }
                Captured::Debug(range) => {
                    if let Some(text) = self.text(range) {
                        visitor.record_debug(&field, &Verbatim(text));
                    }
                }
            }
        }
        updates
    }
}

impl Visit for CapturedFields {
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.push(field, Captured::Bool(value));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.push(field, Captured::I64(value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.push(field, Captured::U64(value));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.push(field, Captured::F64(value));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        let range = self.write_text(|t| t.0.extend_from_slice(value.as_bytes()));
        self.push(field, Captured::Str(range));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let range = self.write_text(|t| {
            // Writing into memory cannot fail; a `Debug` that fails leaves
            // what it wrote, as `format!` would have panicked instead.
            let _ = write!(t, "{value:?}");
        });
        self.push(field, Captured::Debug(range));
    }

    fn record_error(&mut self, _field: &Field, _value: &(dyn std::error::Error + 'static)) {
        self.has_error = true;
    }
}

/// Appends formatted text to the captured text.
struct TextBuffer<'a>(&'a mut SmallVec<[u8; INLINE_TEXT]>);

impl fmt::Write for TextBuffer<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

/// Text formatted once already, formatted again as itself.
struct Verbatim<'a>(&'a str);

impl fmt::Debug for Verbatim<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}
