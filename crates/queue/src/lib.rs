//! bulwark-queue (being written).
