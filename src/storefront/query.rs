//! The product list's query string, checked and turned into a
//! [`ProductFilter`]. Anything malformed is a 400 `invalid_query` naming the
//! parameter, rather than a silently different list.

use serde::Deserialize;
use utoipa::IntoParams;

use super::store::{Keyword, ProductFilter, Sort};
use crate::db;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::product::content::Tag;

/// Longest keyword query, in characters.
pub const MAX_QUERY_CHARS: usize = 100;
/// Most `key:value` pairs in `attributes`.
pub const MAX_ATTRIBUTES: usize = 10;

/// Filters, order and page of `GET /api/products`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ProductQuery {
    /// Only this category and the categories under it.
    pub category_id: Option<i64>,
    /// Only this shop's products.
    pub shop_id: Option<i64>,
    /// Cheapest SKU costs at least this many cents.
    pub min_price: Option<i64>,
    /// Cheapest SKU costs at most this many cents.
    pub max_price: Option<i64>,
    /// `special_offer`, `recommended` or `new`.
    pub tag: Option<String>,
    /// Comma-separated `key:value` pairs that must all match the product's
    /// attributes, e.g. `material:cotton,fit:slim` (values are strings).
    pub attributes: Option<String>,
    /// Keywords, 1-100 characters: matched as words in name, brand and
    /// description, or as a substring of the name (so `手机` finds `华为手机`).
    pub q: Option<String>,
    /// `newest` (default, by listing time), `price_asc`, `price_desc` (by the
    /// cheapest SKU) or `sales`; ties are broken by id.
    pub sort: Option<String>,
    /// 1-based page number (default 1).
    pub page: Option<u32>,
    /// Items per page, 1-100 (default 20).
    pub per_page: Option<u32>,
}

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::InvalidQuery).with_message(message)
}

impl ProductQuery {
    /// The checked filter.
    pub fn filter(&self) -> ApiResult<ProductFilter> {
        for (name, price) in [("min_price", self.min_price), ("max_price", self.max_price)] {
            if price.is_some_and(|cents| cents < 0) {
                return Err(invalid(format!("{name} is a number of cents, 0 or more")));
            }
        }
        if let (Some(min), Some(max)) = (self.min_price, self.max_price) {
            if min > max {
                return Err(invalid("min_price is above max_price"));
            }
        }
        let tag = match self.tag.as_deref() {
            None => None,
            Some(tag) => Some(
                Tag::parse(tag).ok_or_else(|| invalid("tag is special_offer, recommended or new"))?.as_str(),
            ),
        };
        let sort = match self.sort.as_deref() {
            None | Some("newest") => Sort::Newest,
            Some("price_asc") => Sort::PriceAsc,
            Some("price_desc") => Sort::PriceDesc,
            Some("sales") => Sort::Sales,
            Some(_) => return Err(invalid("sort is newest, price_asc, price_desc or sales")),
        };
        Ok(ProductFilter {
            category_id: self.category_id,
            shop_id: self.shop_id,
            min_price_cents: self.min_price,
            max_price_cents: self.max_price,
            tag,
            attributes: self.attributes.as_deref().map(parse_attributes).transpose()?,
            keyword: self.q.as_deref().map(parse_keyword).transpose()?,
            sort,
        })
    }
}

/// `material:cotton,fit:slim` -> `{"material": "cotton", "fit": "slim"}`,
/// the shape `attributes @> $1` matches with the GIN index.
fn parse_attributes(text: &str) -> ApiResult<serde_json::Value> {
    let mut pairs = serde_json::Map::new();
    for pair in text.split(',') {
        let (key, value) = pair
            .split_once(':')
            .map(|(k, v)| (k.trim(), v.trim()))
            .filter(|(k, v)| !k.is_empty() && !v.is_empty())
            .ok_or_else(|| invalid("attributes are comma-separated key:value pairs"))?;
        if pairs.insert(key.to_owned(), value.into()).is_some() {
            return Err(invalid(format!("attribute {key} is given twice")));
        }
    }
    if pairs.len() > MAX_ATTRIBUTES {
        return Err(invalid(format!("at most {MAX_ATTRIBUTES} attributes")));
    }
    Ok(pairs.into())
}

fn parse_keyword(text: &str) -> ApiResult<Keyword> {
    let words = text.trim();
    let chars = words.chars().count();
    if chars == 0 || chars > MAX_QUERY_CHARS {
        return Err(invalid(format!("q is 1-{MAX_QUERY_CHARS} characters")));
    }
    Ok(Keyword { words: words.to_owned(), name_pattern: db::contains_pattern(words) })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn attributes_become_a_json_object() {
        let parsed = parse_attributes("material:cotton, fit : slim,url:http://x").unwrap();
        assert_eq!(parsed, serde_json::json!({"material": "cotton", "fit": "slim", "url": "http://x"}));
        for bad in ["", "material", "material:", ":cotton", "a:1,,b:2", "a:1,a:2"] {
            assert!(parse_attributes(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn keywords_are_trimmed_and_bounded() {
        let keyword = parse_keyword("  手机 ").unwrap();
        assert_eq!((keyword.words.as_str(), keyword.name_pattern.as_str()), ("手机", "%手机%"));
        assert!(parse_keyword("   ").is_err());
        assert!(parse_keyword(&"x".repeat(MAX_QUERY_CHARS + 1)).is_err());
    }

    #[test]
    fn bad_values_are_refused() {
        let query = |q: ProductQuery| q.filter().map(|_| ()).map_err(|e| e.code());
        assert!(query(ProductQuery::default()).is_ok());
        for bad in [
            ProductQuery { min_price: Some(-1), ..Default::default() },
            ProductQuery { min_price: Some(5), max_price: Some(4), ..Default::default() },
            ProductQuery { tag: Some("cheap".into()), ..Default::default() },
            ProductQuery { sort: Some("random".into()), ..Default::default() },
        ] {
            assert_eq!(query(bad), Err(ErrorCode::InvalidQuery));
        }
    }
}
