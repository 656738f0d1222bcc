//! Accessor generators for register values. Each macro names one access rule
//! of xHCI 1.2 §5.1 (Table 5-2), and the accessors it makes say that rule:
//!
//! | macro        | rule | accessors                                         |
//! |--------------|------|---------------------------------------------------|
//! | `ro_bit!`    | RO   | `name()`                                          |
//! | `rw_bit!`    | RW   | `name()`, `set_name(bool)`                        |
//! | `rw1c_bit!`  | RW1C | `name()`, `clear_name()`: writes 1, which clears  |
//! | `rw1s_bit!`  | RW1S | `name()`, `set_name()`: writes 1, 0 does nothing  |
//! | `ro_field!`  | RO   | `name()`                                          |
//! | `rw_field!`  | RW   | `name()`, `set_name(value)`                       |
//!
//! Setters work on a value (`self -> Self`) and never touch the register: the
//! register's own write method in [`super::access`] decides what a write
//! starts from, so that RW1C bits are written as 0 unless cleared on purpose.
//!
//! The macros make every accessor of a rule, so some registers use only part
//! of what is generated (hence the `dead_code` allowances below).

/// Declares a `#[repr(transparent)]` register value over `$raw` with the
/// common helpers (`from_raw`, `raw`, `is_all_ones`).
macro_rules! register_value {
    ($(#[$meta:meta])* $name:ident($raw:ty);) => {
        $(#[$meta])*
        #[repr(transparent)]
        #[derive(Clone, Copy, PartialEq, Eq, Default)]
        pub(crate) struct $name($raw);

        const _: () = assert!(core::mem::size_of::<$name>() == core::mem::size_of::<$raw>());

        #[allow(dead_code, reason = "generated for every register value; not every one needs each")]
        impl $name {
            /// Wraps a value read from the register.
            pub(crate) const fn from_raw(raw: $raw) -> Self {
                Self(raw)
            }

            /// The raw value, as read or as it will be written.
            pub(crate) const fn raw(self) -> $raw {
                self.0
            }

            /// All ones: what a removed device (or a read outside the mapped
            /// window) returns.
            pub(crate) const fn is_all_ones(self) -> bool {
                self.0 == <$raw>::MAX
            }
        }

        impl core::fmt::Debug for $name {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                write!(f, "{}({:#x})", stringify!($name), self.0)
            }
        }
    };
}

/// The getter every bit rule has; `$rule` names the rule in its doc.
macro_rules! bit_getter {
    ($rule:literal, $bit:literal, $get:ident, $doc:literal) => {
        #[doc = concat!($rule, ": ", $doc, " (bit ", stringify!($bit), ").")]
        #[allow(dead_code, reason = "generated accessor")]
        pub(crate) const fn $get(self) -> bool {
            self.0 & (1 << $bit) != 0
        }
    };
}

/// A read-only bit: a getter only.
macro_rules! ro_bit {
    ($bit:literal, $get:ident, $doc:literal) => {
        bit_getter!("RO", $bit, $get, $doc);
    };
}

/// A read-write bit: getter and a setter that takes the new value.
macro_rules! rw_bit {
    ($bit:literal, $get:ident, $set:ident, $doc:literal) => {
        bit_getter!("RW", $bit, $get, $doc);

        #[doc = concat!("RW: sets ", $doc, " (bit ", stringify!($bit), ") to `on` in this value.")]
        #[allow(dead_code, reason = "generated accessor")]
        #[must_use]
        pub(crate) const fn $set(self, on: bool) -> Self {
            if on {
                Self(self.0 | (1 << $bit))
            } else {
                Self(self.0 & !(1 << $bit))
            }
        }
    };
}

/// A write-1-to-clear bit: getter, and `clear_*` which sets the bit in this
/// value so that writing it clears the bit in the register.
macro_rules! rw1c_bit {
    ($bit:literal, $get:ident, $clear:ident, $doc:literal) => {
        bit_getter!("RW1C", $bit, $get, $doc);

        #[doc = concat!("RW1C: writes 1 to ", $doc, " (bit ", stringify!($bit), "), which clears it.")]
        #[allow(dead_code, reason = "generated accessor")]
        #[must_use]
        pub(crate) const fn $clear(self) -> Self {
            Self(self.0 | (1 << $bit))
        }
    };
}

/// A write-1-to-set bit: getter, and `set_*` which sets the bit in this value
/// so that writing it starts what the bit does (writing 0 has no effect).
macro_rules! rw1s_bit {
    ($bit:literal, $get:ident, $set:ident, $doc:literal) => {
        bit_getter!("RW1S", $bit, $get, $doc);

        #[doc = concat!("RW1S: writes 1 to ", $doc, " (bit ", stringify!($bit), "), which starts it.")]
        #[allow(dead_code, reason = "generated accessor")]
        #[must_use]
        pub(crate) const fn $set(self) -> Self {
            Self(self.0 | (1 << $bit))
        }
    };
}

/// The getter of a field; `$rule` names the rule in its doc.
macro_rules! field_getter {
    ($rule:literal, $lo:literal .. $hi:literal, $get:ident, $ty:ty, $doc:literal) => {
        #[doc = concat!($rule, ": ", $doc, " (bits ", stringify!($lo), "..", stringify!($hi), ").")]
        #[allow(dead_code, reason = "generated accessor")]
        pub(crate) const fn $get(self) -> $ty {
            ((self.0 >> $lo) & ((1 << ($hi - $lo)) - 1)) as $ty
        }
    };
}

/// A read-only field of bits `$lo..$hi` (exclusive), as `$ty`.
macro_rules! ro_field {
    ($lo:literal .. $hi:literal, $get:ident, $ty:ty, $doc:literal) => {
        field_getter!("RO", $lo..$hi, $get, $ty, $doc);
    };
}

/// A read-write field of bits `$lo..$hi` (exclusive) of a 32-bit register, as `$ty`.
macro_rules! rw_field {
    ($lo:literal .. $hi:literal, $get:ident, $set:ident, $ty:ty, $doc:literal) => {
        field_getter!("RW", $lo..$hi, $get, $ty, $doc);

        #[doc = concat!("RW: sets ", $doc, " (bits ", stringify!($lo), "..", stringify!($hi), ") in this value.")]
        #[allow(dead_code, reason = "generated accessor")]
        #[must_use]
        pub(crate) const fn $set(self, value: $ty) -> Self {
            let mask: u32 = ((1 << ($hi - $lo)) - 1) << $lo;
            Self((self.0 & !mask) | (((value as u32) << $lo) & mask))
        }
    };
}
