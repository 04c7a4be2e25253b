//! The names of unit enum variants, taken from their serde attributes.
//!
//! An enum's `#[serde(rename_all = …)]` / `#[serde(rename = …)]` attributes are the one
//! table of its names: [`name_of`] reads a variant's name as serde writes it, [`parse_name`]
//! reads one back as serde would, and [`names`] lists every accepted name (declaration
//! order) for error messages and usage text.

#![warn(missing_docs)]

use std::fmt;

use serde::de::{self, DeserializeOwned, Visitor};
use serde::ser::{self, Impossible, Serialize};

/// The serde name of a unit variant (`Reason::MaxPerCall` → `"max_per_call"`).
///
/// # Panics
///
/// If `T` does not serialize as a unit variant: a programming error, caught by the
/// round-trip tests of every enum that uses this.
pub fn name_of<T: Serialize>(value: &T) -> &'static str {
    match value.serialize(VariantName) {
        Ok(name) => name,
        Err(_) => panic!(
            "{} does not serialize as a unit variant",
            std::any::type_name::<T>()
        ),
    }
}

/// Every name `T` deserializes from, in declaration order.
pub fn names<T: DeserializeOwned>() -> &'static [&'static str] {
    match T::deserialize(VariantNames) {
        Err(Probe::Variants(names)) => names,
        _ => &[],
    }
}

/// `T` from its serde name; the error names the value and lists the accepted names.
pub fn parse_name<T: DeserializeOwned>(s: &str) -> Result<T, UnknownName> {
    let de = de::value::StrDeserializer::<de::value::Error>::new(s);
    T::deserialize(de).map_err(|_| UnknownName {
        value: s.to_string(),
        expected: names::<T>(),
    })
}

/// A name that is not one of an enum's variants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownName {
    /// The name as given.
    pub value: String,
    /// Every accepted name, in declaration order.
    pub expected: &'static [&'static str],
}

impl UnknownName {
    /// The accepted names in backticks, comma-separated: `` `a`, `b`, `c` ``.
    pub fn quoted(&self) -> String {
        self.expected
            .iter()
            .map(|n| format!("`{n}`"))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The accepted names in backticks as alternatives: `` `a`, `b` or `c` ``.
    pub fn alternatives(&self) -> String {
        let quoted = self.quoted();
        match quoted.rfind(", ") {
            Some(i) => format!("{} or {}", &quoted[..i], &quoted[i + 2..]),
            None => quoted,
        }
    }
}

impl fmt::Display for UnknownName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown value `{}`, expected one of {}",
            self.value,
            self.expected.join(", ")
        )
    }
}

impl std::error::Error for UnknownName {}

/// The error of the probes: [`VariantNames`] carries the variant list out of
/// `deserialize_enum` in it; anything else is `Other` (for [`VariantName`], a value that is
/// not a unit variant).
#[derive(Debug)]
enum Probe {
    Variants(&'static [&'static str]),
    Other,
}

impl fmt::Display for Probe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("not a unit enum")
    }
}

impl std::error::Error for Probe {}

impl ser::Error for Probe {
    fn custom<M: fmt::Display>(_: M) -> Self {
        Probe::Other
    }
}

impl de::Error for Probe {
    fn custom<M: fmt::Display>(_: M) -> Self {
        Probe::Other
    }
}

/// A serializer that accepts only a unit variant and returns its name.
struct VariantName;

macro_rules! refuse {
    ($($method:ident($($arg:ty),*) -> $ok:ty;)*) => {
        $(fn $method(self, $(_: $arg),*) -> Result<$ok, Probe> {
            Err(Probe::Other)
        })*
    };
}

impl ser::Serializer for VariantName {
    type Ok = &'static str;
    type Error = Probe;
    type SerializeSeq = Impossible<&'static str, Probe>;
    type SerializeTuple = Impossible<&'static str, Probe>;
    type SerializeTupleStruct = Impossible<&'static str, Probe>;
    type SerializeTupleVariant = Impossible<&'static str, Probe>;
    type SerializeMap = Impossible<&'static str, Probe>;
    type SerializeStruct = Impossible<&'static str, Probe>;
    type SerializeStructVariant = Impossible<&'static str, Probe>;

    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<&'static str, Probe> {
        Ok(variant)
    }

    refuse! {
        serialize_bool(bool) -> &'static str;
        serialize_i8(i8) -> &'static str;
        serialize_i16(i16) -> &'static str;
        serialize_i32(i32) -> &'static str;
        serialize_i64(i64) -> &'static str;
        serialize_u8(u8) -> &'static str;
        serialize_u16(u16) -> &'static str;
        serialize_u32(u32) -> &'static str;
        serialize_u64(u64) -> &'static str;
        serialize_f32(f32) -> &'static str;
        serialize_f64(f64) -> &'static str;
        serialize_char(char) -> &'static str;
        serialize_str(&str) -> &'static str;
        serialize_bytes(&[u8]) -> &'static str;
        serialize_none() -> &'static str;
        serialize_unit() -> &'static str;
        serialize_unit_struct(&'static str) -> &'static str;
        serialize_seq(Option<usize>) -> Self::SerializeSeq;
        serialize_tuple(usize) -> Self::SerializeTuple;
        serialize_tuple_struct(&'static str, usize) -> Self::SerializeTupleStruct;
        serialize_tuple_variant(&'static str, u32, &'static str, usize) -> Self::SerializeTupleVariant;
        serialize_map(Option<usize>) -> Self::SerializeMap;
        serialize_struct(&'static str, usize) -> Self::SerializeStruct;
        serialize_struct_variant(&'static str, u32, &'static str, usize) -> Self::SerializeStructVariant;
    }

    fn serialize_some<T: Serialize + ?Sized>(self, _: &T) -> Result<&'static str, Probe> {
        Err(Probe::Other)
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: &T,
    ) -> Result<&'static str, Probe> {
        Err(Probe::Other)
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<&'static str, Probe> {
        Err(Probe::Other)
    }
}

/// A deserializer that stops at `deserialize_enum` with the enum's variant names.
struct VariantNames;

impl<'de> de::Deserializer<'de> for VariantNames {
    type Error = Probe;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Probe> {
        Err(Probe::Other)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        variants: &'static [&'static str],
        _: V,
    ) -> Result<V::Value, Probe> {
        Err(Probe::Variants(variants))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map struct identifier ignored_any
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    #[serde(rename_all = "snake_case")]
    enum Shape {
        Circle,
        #[serde(rename = "Square")]
        Square,
        RoundedBox,
    }

    #[test]
    fn names_come_from_the_serde_attributes() {
        assert_eq!(name_of(&Shape::RoundedBox), "rounded_box");
        assert_eq!(name_of(&Shape::Square), "Square");
        assert_eq!(names::<Shape>(), ["circle", "Square", "rounded_box"]);
        assert_eq!(parse_name::<Shape>("rounded_box"), Ok(Shape::RoundedBox));
        assert_eq!(names::<u32>(), [] as [&str; 0]);
    }

    #[test]
    fn an_unknown_name_is_named_with_the_accepted_ones() {
        let e = parse_name::<Shape>("blob").unwrap_err();
        assert_eq!(
            e.to_string(),
            "unknown value `blob`, expected one of circle, Square, rounded_box"
        );
        assert_eq!(e.quoted(), "`circle`, `Square`, `rounded_box`");
        assert_eq!(e.alternatives(), "`circle`, `Square` or `rounded_box`");
        assert!(parse_name::<Shape>("Circle").is_err(), "names are exact");
    }

    /// Command-line values are the serde names.
    fn clap_names_are_serde_names<T>()
    where
        T: clap::ValueEnum + Serialize + DeserializeOwned,
    {
        let clap: Vec<String> = T::value_variants()
            .iter()
            .filter_map(|v| v.to_possible_value())
            .map(|p| p.get_name().to_string())
            .collect();
        assert_eq!(clap, names::<T>());
        for v in T::value_variants() {
            assert_eq!(v.to_possible_value().unwrap().get_name(), name_of(v));
        }
    }

    #[test]
    fn command_line_values_are_the_serde_names() {
        clap_names_are_serde_names::<crate::convert::HvbText>();
        let replay: Vec<&str> = crate::replay::InputFormat::ALL
            .iter()
            .map(|f| f.as_str())
            .collect();
        assert_eq!(
            replay,
            [
                "native",
                "deepgram",
                "assemblyai",
                "aws",
                "google",
                "whisperlive",
                "hvb"
            ]
        );
    }

    #[test]
    fn the_product_enums_keep_their_names() {
        use crate::session::Reason;
        assert_eq!(
            Reason::ALL.map(Reason::as_str),
            [
                "shown",
                "control",
                "cooldown",
                "max_per_call",
                "budget",
                "gap"
            ]
        );
        assert_eq!(
            crate::library::Category::BuyingSignal.as_str(),
            "buying_signal"
        );
        assert_eq!(crate::library::Speaker::Prospect.as_str(), "prospect");
        assert_eq!(
            crate::protocol::FeedbackAction::NotUseful.as_str(),
            "not_useful"
        );
        assert_eq!(crate::config::Role::Manager.as_str(), "manager");
        assert_eq!(crate::outcomes::OutcomeKind::Won.as_str(), "won");
        assert_eq!(
            crate::outcomes::OutcomeKind::parse(" LOST "),
            Ok(crate::outcomes::OutcomeKind::Lost)
        );
        assert_eq!(crate::report::Metric::Matured.as_str(), "matured");
    }

    #[test]
    #[should_panic(expected = "does not serialize as a unit variant")]
    fn only_unit_variants_have_a_name() {
        name_of(&"text");
    }
}
