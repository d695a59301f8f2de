//! What a merchant writes about a product: the SPU fields, its specs and
//! one SKU per combination of spec values. The same document is the body
//! of create and edit, the pending revision a listed product keeps for
//! review, and what is compared to tell a customer-facing edit.

use std::collections::{BTreeMap, HashSet};

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::ApiResult;
use crate::validate::{self, Validator};

/// Most specs (dimensions such as colour and size) of one product.
pub const MAX_SPECS: usize = 3;
/// Most values of one spec.
pub const MAX_SPEC_VALUES: usize = 30;
/// Most SKUs of one product.
pub const MAX_SKUS: usize = 200;
/// Most images of one product.
pub const MAX_IMAGES: usize = 10;
/// Most display attributes of one product.
pub const MAX_ATTRIBUTES: usize = 30;

/// A storefront badge (seed 2 `product_spu` tags).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Tag {
    SpecialOffer,
    Recommended,
    New,
}

/// Who may buy (seed 2 buy limit).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Audience {
    #[default]
    Anyone,
    MembersOnly,
}

/// What kind of goods (seed 1): physical, a top-up, or a software licence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ProductType {
    #[default]
    Normal,
    Recharge,
    License,
}

macro_rules! stored_names {
    ($($ty:ident { $($variant:ident => $name:literal),* })*) => {$(
        impl $ty {
            /// The stored name.
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $name,)* }
            }
            /// The value stored as `name`.
            pub fn parse(name: &str) -> Option<Self> {
                match name { $($name => Some(Self::$variant),)* _ => None }
            }
        }
    )*};
}

stored_names! {
    Tag { SpecialOffer => "special_offer", Recommended => "recommended", New => "new" }
    Audience { Anyone => "anyone", MembersOnly => "members_only" }
    ProductType { Normal => "normal", Recharge => "recharge", License => "license" }
}

/// One spec and its possible values, e.g. colour: red, blue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    /// 1-30 characters, unique within the product.
    pub name: String,
    /// 1-30 distinct values of 1-40 characters.
    pub values: Vec<String>,
}

/// One SKU: a combination of spec values with its own price.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SkuContent {
    /// One value for every spec, e.g. `{"colour": "red", "size": "XL"}`;
    /// `{}` for a product without specs.
    #[serde(default)]
    pub spec_values: BTreeMap<String, String>,
    /// The merchant's own code, unique among the shop's active SKUs.
    pub code: String,
    /// Selling price in cents.
    pub price_cents: i64,
    /// Crossed-out reference price in cents.
    pub market_price_cents: Option<i64>,
    /// At or below this stock the SKU is listed as low on stock.
    #[serde(default)]
    pub low_stock_threshold: i32,
}

impl SkuContent {
    /// The canonical text of the spec combination: what identifies a SKU
    /// across edits (its stock stays with it).
    pub fn spec_key(&self) -> String {
        serde_json::to_string(&self.spec_values).unwrap_or_default()
    }
}

/// A product with its specs and SKUs, as created or edited.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProductContent {
    /// 1-120 characters.
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub category_id: i64,
    #[serde(default)]
    pub brand: String,
    /// Up to 10 http(s) URLs; the first is the cover.
    #[serde(default)]
    pub images: Vec<String>,
    #[serde(default)]
    pub tags: Vec<Tag>,
    #[serde(default)]
    pub audience: Audience,
    #[serde(default)]
    pub product_type: ProductType,
    /// Display attributes shoppers can filter on, e.g. `{"material": "cotton"}`.
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
    /// Up to 3 specs; empty for a product sold in one variant.
    #[serde(default)]
    pub specs: Vec<Spec>,
    /// 1-200 SKUs, each a distinct combination of spec values.
    pub skus: Vec<SkuContent>,
}

impl ProductContent {
    /// Trims text fields and orders tags, so equal content compares equal.
    pub fn normalised(mut self) -> Self {
        self.name = self.name.trim().to_owned();
        self.description = self.description.trim().to_owned();
        self.brand = self.brand.trim().to_owned();
        self.tags.sort();
        self.tags.dedup();
        for sku in &mut self.skus {
            sku.code = sku.code.trim().to_owned();
        }
        self
    }

    /// The part shoppers see: everything but the SKUs' codes and low-stock
    /// thresholds. An edit that changes it sends a listed product to review.
    pub fn customer_facing(&self) -> Self {
        let mut facing = self.clone();
        for sku in &mut facing.skus {
            sku.code.clear();
            sku.low_stock_threshold = 0;
        }
        // SKUs are a set: the order they are listed in means nothing.
        facing.skus.sort_by_cached_key(SkuContent::spec_key);
        facing
    }

    /// Cheapest and dearest SKU price.
    pub fn price_range(&self) -> (i64, i64) {
        let prices = self.skus.iter().map(|sku| sku.price_cents);
        (prices.clone().min().unwrap_or(0), prices.max().unwrap_or(0))
    }

    /// Checks every field, reporting every problem at once (422), before
    /// anything is written.
    pub fn validate(&self) -> ApiResult<()> {
        let mut v = Validator::new();
        v.length("name", &self.name, 1, 120)
            .length("description", &self.description, 0, 10_000)
            .length("brand", &self.brand, 0, 60)
            .check("images", self.images.len() <= MAX_IMAGES, "too_many");
        for (i, url) in self.images.iter().enumerate() {
            v.check(
                &format!("images[{i}]"),
                validate::is_http_url(url) && url.len() <= 500,
                "invalid_format",
            );
        }
        v.check("attributes", self.attributes.len() <= MAX_ATTRIBUTES, "too_many");
        for (key, value) in &self.attributes {
            v.length(&format!("attributes.{key}"), key, 1, 40).length(
                &format!("attributes.{key}"),
                value,
                1,
                200,
            );
        }
        self.validate_specs(&mut v);
        self.validate_skus(&mut v);
        v.finish()
    }

    fn validate_specs(&self, v: &mut Validator) {
        v.check("specs", self.specs.len() <= MAX_SPECS, "too_many");
        let mut names = HashSet::new();
        for (i, spec) in self.specs.iter().enumerate() {
            v.length(&format!("specs[{i}].name"), &spec.name, 1, 30);
            v.check(&format!("specs[{i}].name"), names.insert(spec.name.to_lowercase()), "duplicate");
            let field = format!("specs[{i}].values");
            v.check(&field, !spec.values.is_empty(), "required");
            v.check(&field, spec.values.len() <= MAX_SPEC_VALUES, "too_many");
            let mut values = HashSet::new();
            for value in &spec.values {
                v.length(&field, value, 1, 40);
                v.check(&field, values.insert(value.as_str()), "duplicate");
            }
        }
    }

    fn validate_skus(&self, v: &mut Validator) {
        v.check("skus", !self.skus.is_empty(), "required");
        v.check("skus", self.skus.len() <= MAX_SKUS, "too_many");
        let mut combinations = HashSet::new();
        let mut codes = HashSet::new();
        for (i, sku) in self.skus.iter().enumerate() {
            let field = format!("skus[{i}].spec_values");
            for spec in &self.specs {
                match sku.spec_values.get(&spec.name) {
                    None => v.problem(&field, "missing_spec"),
                    Some(value) => {
                        v.check(&field, spec.values.contains(value), "unknown_value");
                    }
                }
            }
            let declared = |name: &String| self.specs.iter().any(|spec| &spec.name == name);
            v.check(&field, sku.spec_values.keys().all(declared), "unknown_spec");
            v.check(&field, combinations.insert(sku.spec_key()), "duplicate_combination");
            let code_field = format!("skus[{i}].code");
            v.length(&code_field, &sku.code, 1, 40);
            v.check(&code_field, codes.insert(sku.code.to_lowercase()), "duplicate");
            v.check(&format!("skus[{i}].price_cents"), sku.price_cents >= 0, "negative");
            if let Some(market) = sku.market_price_cents {
                v.check(&format!("skus[{i}].market_price_cents"), market >= 0, "negative");
            }
            v.check(&format!("skus[{i}].low_stock_threshold"), sku.low_stock_threshold >= 0, "negative");
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn shirt() -> ProductContent {
        serde_json::from_value(serde_json::json!({
            "name": "Shirt", "category_id": 1,
            "specs": [{"name": "colour", "values": ["red", "blue"]}, {"name": "size", "values": ["M", "L"]}],
            "skus": [
                {"spec_values": {"colour": "red", "size": "M"}, "code": "S-RM", "price_cents": 1000},
                {"spec_values": {"colour": "blue", "size": "L"}, "code": "S-BL", "price_cents": 1200}
            ]
        }))
        .unwrap()
    }

    fn problems(content: &ProductContent) -> Vec<(String, String)> {
        let Err(err) = content.validate() else { return vec![] };
        err.details().iter().map(|d| (d.field.clone(), d.problem.clone())).collect()
    }

    #[test]
    fn a_valid_product_passes() {
        assert!(problems(&shirt()).is_empty());
    }

    #[test]
    fn spec_combinations_must_be_complete_known_and_distinct() {
        let mut content = shirt();
        content.skus[1].spec_values = content.skus[0].spec_values.clone();
        content.skus.push(SkuContent {
            spec_values: BTreeMap::from([("colour".into(), "green".into())]),
            code: "S-G".into(),
            price_cents: -1,
            market_price_cents: None,
            low_stock_threshold: 0,
        });
        let found = problems(&content);
        for expected in [
            ("skus[1].spec_values", "duplicate_combination"),
            ("skus[2].spec_values", "unknown_value"),
            ("skus[2].spec_values", "missing_spec"),
            ("skus[2].price_cents", "negative"),
        ] {
            assert!(found.contains(&(expected.0.into(), expected.1.into())), "{expected:?} in {found:?}");
        }
    }

    #[test]
    fn only_codes_and_thresholds_are_internal() {
        let mut edited = shirt();
        edited.skus[0].code = "NEW".into();
        edited.skus[0].low_stock_threshold = 9;
        assert_eq!(edited.customer_facing(), shirt().customer_facing());
        edited.skus.reverse();
        assert_eq!(edited.customer_facing(), shirt().customer_facing(), "SKU order means nothing");
        edited.skus[0].price_cents += 1;
        assert_ne!(edited.customer_facing(), shirt().customer_facing());
    }
}
