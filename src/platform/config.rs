//! Embedded build-time configuration (build.rs writes it from the `MIRS_*`
//! environment variables): the static region's size, the thread table's
//! size, the page provider's cap.

include!(concat!(env!("OUT_DIR"), "/embedded_config.rs"));
