//! The one connection-id scheme of every fleet driver: a link connection
//! id carries the device (its index in a fleet, or a device's random base
//! on a real link) above [`GENERATION_BITS`] bits of the device's NAS
//! connection number ([`nido_ue::Device::connection`]), so a datagram for
//! a connection the device has left is told apart from its current one.

/// Bits of a link connection id that carry the device's connection number.
pub const GENERATION_BITS: u32 = 20;

/// The link connection of `device`'s NAS connection `generation` (the
/// generation wraps at 2^20).
pub fn connection_id(device: u64, generation: u32) -> u64 {
    (device << GENERATION_BITS) | u64::from(generation & ((1 << GENERATION_BITS) - 1))
}

/// The device a link connection id belongs to (`usize::MAX` if it does
/// not fit).
pub fn device_of(conn: u64) -> usize {
    usize::try_from(conn >> GENERATION_BITS).unwrap_or(usize::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_id_names_its_device_and_wraps_its_generation() {
        assert_eq!(device_of(connection_id(7, 3)), 7);
        assert_eq!(connection_id(7, 3) & 0xF_FFFF, 3);
        assert_eq!(connection_id(1, 1 << 20), connection_id(1, 0));
        assert_ne!(connection_id(1, 1), connection_id(2, 1));
    }
}
