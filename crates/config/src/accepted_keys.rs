//! Every key `portcullis.toml` accepts, read off the raw serde structs themselves, so that the
//! reference (docs/configuration.md) can be checked against the code rather than against a list
//! someone has to remember to update (see `docs_reference.rs`).
//!
//! How: [`RawConfig`] is deserialized from a recording [`Deserializer`] that offers every field
//! a struct names (serde passes the names to `deserialize_struct`), descends into sections and
//! sub-tables, and notes the dotted path and the shape of each leaf.
//!
//! Why not the `serde-reflection` crate: it refuses `deserialize_any`, which the untagged
//! [`Size`](crate::units::Size) needs (a size is a number or a string), and it records formats
//! by type name rather than by key path, so the paths would have to be rebuilt from its registry.
//! What is needed here (structs, options, lists, scalars) is small enough to write out, and an
//! unfamiliar shape makes the trace fail loudly instead of being skipped.

use serde::de::value::{BorrowedStrDeserializer, Error};
use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

use crate::root::RawConfig;

/// What a key's value must look like in TOML.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Shape {
    String,
    Integer,
    Float,
    Boolean,
    /// A number or a string: the untagged `Size` (the only `deserialize_any` in the raw structs).
    IntegerOrString,
    List(Box<Shape>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Key {
    /// Dotted, as in error messages: `limits.max_connections`, `firewall.imaps.allow`.
    pub path: String,
    pub shape: Shape,
}

/// Every leaf key of the file, in the order the structs declare them.
pub(crate) fn accepted_keys() -> Vec<Key> {
    let mut keys = Vec::new();
    RawConfig::deserialize(Recorder { path: String::new(), keys: &mut keys })
        .unwrap_or_else(|e| panic!("the raw config structs could not be traced: {e}"));
    keys
}

struct Recorder<'a> {
    path: String,
    keys: &'a mut Vec<Key>,
}

impl Recorder<'_> {
    fn leaf(self, shape: Shape) {
        self.keys.push(Key { path: self.path, shape });
    }

    fn unsupported<T>(&self, what: &str) -> Result<T, Error> {
        Err(de::Error::custom(format!(
            "{}: a {what} is not a shape the key tracer knows; teach accepted_keys.rs about it",
            self.path
        )))
    }
}

/// A scalar leaf: record its shape, hand the visitor a neutral value of that type.
macro_rules! scalar {
    ($($method:ident => $shape:ident, $visit:ident($value:expr);)*) => {
        $(fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
            self.leaf(Shape::$shape);
            visitor.$visit($value)
        })*
    };
}

/// Shapes a config key should never have; tracing one is an error, so a new kind of field
/// cannot slip past the documentation check.
macro_rules! refused {
    ($($method:ident($($arg:ident: $ty:ty),*) => $what:literal;)*) => {
        $(fn $method<V: Visitor<'de>>(self, $($arg: $ty,)* _visitor: V) -> Result<V::Value, Error> {
            $(let _ = $arg;)*
            self.unsupported($what)
        })*
    };
}

impl<'de> de::Deserializer<'de> for Recorder<'_> {
    type Error = Error;

    scalar! {
        deserialize_bool => Boolean, visit_bool(false);
        deserialize_i8 => Integer, visit_i8(0);
        deserialize_i16 => Integer, visit_i16(0);
        deserialize_i32 => Integer, visit_i32(0);
        deserialize_i64 => Integer, visit_i64(0);
        deserialize_u8 => Integer, visit_u8(0);
        deserialize_u16 => Integer, visit_u16(0);
        deserialize_u32 => Integer, visit_u32(0);
        deserialize_u64 => Integer, visit_u64(0);
        deserialize_f32 => Float, visit_f32(0.0);
        deserialize_f64 => Float, visit_f64(0.0);
        deserialize_char => String, visit_char(' ');
        deserialize_str => String, visit_str("");
        deserialize_string => String, visit_str("");
        // Untagged enums buffer their input through `deserialize_any`; in the raw structs that
        // is `Size`, which takes a number or a string. A number satisfies its first variant.
        deserialize_any => IntegerOrString, visit_u64(0);
    }

    refused! {
        deserialize_bytes() => "byte string";
        deserialize_byte_buf() => "byte string";
        deserialize_unit() => "unit";
        deserialize_unit_struct(_name: &'static str) => "unit struct";
        deserialize_newtype_struct(_name: &'static str) => "newtype struct";
        deserialize_tuple(_len: usize) => "tuple";
        deserialize_tuple_struct(_name: &'static str, _len: usize) => "tuple struct";
        deserialize_map() => "map with free-form keys";
        deserialize_enum(_name: &'static str, _variants: &'static [&'static str]) => "enum";
        deserialize_identifier() => "identifier";
        deserialize_ignored_any() => "ignored value";
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        // Every key is optional in the raw structs; what matters is what it holds when present.
        visitor.visit_some(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        // One element, traced into a scratch list, tells the element's shape.
        let mut element = Vec::new();
        let value =
            visitor.visit_seq(OneElement { path: format!("{}[]", self.path), keys: &mut element, done: false })?;
        match element.as_slice() {
            [Key { shape, .. }] => {
                let shape = shape.clone();
                self.leaf(Shape::List(Box::new(shape)));
                Ok(value)
            }
            _ => self.unsupported("list of tables or of lists"),
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_map(Fields { prefix: self.path, fields, next: 0, keys: self.keys })
    }
}

/// A table's keys, each once, in declaration order.
struct Fields<'a> {
    prefix: String,
    fields: &'static [&'static str],
    next: usize,
    keys: &'a mut Vec<Key>,
}

impl<'de> MapAccess<'de> for Fields<'_> {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, Error> {
        match self.fields.get(self.next) {
            Some(name) => seed.deserialize(BorrowedStrDeserializer::new(name)).map(Some),
            None => Ok(None),
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
        let name = self.fields[self.next];
        self.next += 1;
        let path = if self.prefix.is_empty() { name.to_string() } else { format!("{}.{name}", self.prefix) };
        seed.deserialize(Recorder { path, keys: &mut *self.keys })
    }
}

struct OneElement<'a> {
    path: String,
    keys: &'a mut Vec<Key>,
    done: bool,
}

impl<'de> SeqAccess<'de> for OneElement<'_> {
    type Error = Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>, Error> {
        if std::mem::replace(&mut self.done, true) {
            return Ok(None);
        }
        seed.deserialize(Recorder { path: self.path.clone(), keys: &mut *self.keys }).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_trace_sees_every_section_and_the_shape_of_each_key() {
        let keys = accepted_keys();
        let shape = |path: &str| keys.iter().find(|k| k.path == path).map(|k| k.shape.clone());
        assert_eq!(shape("hostname"), Some(Shape::String));
        assert_eq!(shape("limits.max_connections"), Some(Shape::Integer));
        assert_eq!(shape("limits.max_message_size"), Some(Shape::IntegerOrString));
        assert_eq!(shape("alerts.deviations"), Some(Shape::Float));
        assert_eq!(shape("admin.tls"), Some(Shape::Boolean));
        assert_eq!(shape("listen.imaps"), Some(Shape::List(Box::new(Shape::String))));
        assert_eq!(shape("firewall.pop3s.deny"), Some(Shape::List(Box::new(Shape::String))));
        assert_eq!(shape("firewall.pop3s"), None, "tables are not keys; their keys are");
        assert_eq!(shape("limits"), None);
        let distinct: std::collections::HashSet<&str> = keys.iter().map(|k| k.path.as_str()).collect();
        assert_eq!(distinct.len(), keys.len(), "each key once");
        assert!(keys.len() > 60, "{} keys: the trace stopped early", keys.len());
    }
}
