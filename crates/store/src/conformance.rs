//! Conformance suite every backend must pass (being written).
