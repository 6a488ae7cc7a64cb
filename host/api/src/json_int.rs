//! Whole numbers in request bodies, read as JSON Schema reads them: `300` and `300.0` are the
//! same integer (the OpenAPI document says `integer`, and clients in JavaScript or Python
//! may write either), and one past `u64::MAX` is still an integer: it saturates, as every
//! such field (a TTL, a wait) is capped by the pool or the server anyway. A fraction or a
//! negative number is refused with its reason.

use serde::{Deserialize, Deserializer, de::Error};

fn whole(n: serde_json::Number) -> Result<u64, String> {
    if let Some(u) = n.as_u64() {
        return Ok(u);
    }
    match n.as_f64() {
        // `as` saturates: a whole float past u64::MAX reads as u64::MAX.
        Some(f) if f.fract() == 0.0 && f >= 0.0 => Ok(f as u64),
        _ => Err(format!("expected a whole number ≥ 0, got {n}")),
    }
}

/// A required whole number.
pub fn u64<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    whole(serde_json::Number::deserialize(d)?).map_err(D::Error::custom)
}

/// An optional whole number (`null` or absent: `None`).
pub fn opt_u64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    Option::<serde_json::Number>::deserialize(d)?
        .map(whole)
        .transpose()
        .map_err(D::Error::custom)
}

#[cfg(test)]
mod tests {
    #[derive(serde::Deserialize)]
    struct B {
        #[serde(deserialize_with = "super::u64")]
        n: u64,
        #[serde(default, deserialize_with = "super::opt_u64")]
        o: Option<u64>,
    }

    fn read(s: &str) -> Result<B, String> {
        serde_json::from_str(s).map_err(|e| e.to_string())
    }

    #[test]
    fn whole_floats_are_integers_and_fractions_are_not() {
        let b = read(r#"{"n": 816.0, "o": 5}"#).unwrap();
        assert_eq!((b.n, b.o), (816, Some(5)));
        assert_eq!(read(r#"{"n": 1, "o": null}"#).unwrap().o, None);
        assert_eq!(read(r#"{"n": 1}"#).unwrap().o, None);
        assert_eq!(read(r#"{"n": 18446744073709551615}"#).unwrap().n, u64::MAX);
        assert_eq!(
            read(r#"{"n": 572304578872095652446208}"#).unwrap().n,
            u64::MAX
        );
        assert_eq!(read(r#"{"n": 1e300}"#).unwrap().n, u64::MAX);
        // Read exactly (serde_json's float_roundtrip), not to the nearest half.
        assert_eq!(
            read(r#"{"n": 4031205844910578.0}"#).unwrap().n,
            4031205844910578
        );
        for bad in [
            r#"{"n": 1.5}"#,
            r#"{"n": -1}"#,
            r#"{"n": -0.5}"#,
            r#"{"n": "1"}"#,
        ] {
            assert!(read(bad).is_err(), "{bad}");
        }
    }
}
