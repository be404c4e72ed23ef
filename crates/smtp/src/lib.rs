//! bulwark-smtp (being written).
