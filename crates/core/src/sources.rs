//! Which source entities the warehouse holds, and what a view needs of them. A chain declares
//! its entities in its source contract (`c360-etl`'s `contract`); every ETL run records in the
//! manifest note [`NOTE`] the entities loaded so far. A view that needs an entity the chain
//! never provided answers [`crate::CoreError::NotInSources`] naming it, instead of an empty
//! or misleading answer.

use std::collections::{BTreeMap, BTreeSet};

use crate::{CoreError, CoreResult};

/// The manifest note listing the entities loaded so far.
pub const NOTE: &str = "loaded_entities";

/// The entities a warehouse holds, from its manifest notes; None for a warehouse written before
/// contracts existed (it was loaded from the simulator's schema: everything).
pub fn loaded(notes: &BTreeMap<String, serde_json::Value>) -> Option<BTreeSet<String>> {
    notes
        .get(NOTE)
        .and_then(|v| serde_json::from_value(v.clone()).ok())
}

/// Ok when every entity `needs` names was loaded; else the error that names those missing.
/// `view` says what could not be answered.
pub fn require(loaded: Option<&BTreeSet<String>>, view: &str, needs: &[&str]) -> CoreResult<()> {
    let Some(have) = loaded else {
        return Ok(());
    };
    let missing: Vec<&str> = needs
        .iter()
        .copied()
        .filter(|n| !have.contains(*n))
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(CoreError::NotInSources(format!(
            "{view} needs {}, which the source contract does not provide (declare {} in c360.toml; `c360 sources fields` lists them)",
            missing.join(" and "),
            if missing.len() == 1 { "it" } else { "them" }
        )))
    }
}

/// Ok when at least one of `entities` was loaded (a view that can use either); else the error
/// that names them.
pub fn require_any(
    loaded: Option<&BTreeSet<String>>,
    view: &str,
    entities: &[&str],
) -> CoreResult<()> {
    if any(loaded, entities) {
        Ok(())
    } else {
        Err(CoreError::NotInSources(format!(
            "{view} needs {}, which the source contract does not provide (declare one in c360.toml; `c360 sources fields` lists them)",
            entities.join(" or ")
        )))
    }
}

/// Whether any of `entities` was loaded (a view that can use either).
pub fn any(loaded: Option<&BTreeSet<String>>, entities: &[&str]) -> bool {
    loaded.is_none_or(|have| entities.iter().any(|e| have.contains(*e)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_view_names_what_it_misses() {
        let have: BTreeSet<String> = ["orders".to_string()].into_iter().collect();
        assert!(require(Some(&have), "x", &["orders"]).is_ok());
        let e = require(Some(&have), "the network", &["shares", "paid_by"]).unwrap_err();
        assert!(
            e.to_string()
                .contains("the network needs shares and paid_by"),
            "{e}"
        );
        assert!(require(None, "x", &["reviews"]).is_ok());
        assert!(any(Some(&have), &["orders", "wx_orders"]));
        assert!(!any(Some(&have), &["reviews"]));
    }
}
