//! Selectable keyboard layouts (all `pc-keyboard` 0.9 layouts).
#![forbid(unsafe_code)]

use core::fmt;

use pc_keyboard::layouts::{self, AnyLayout};

/// A keyboard layout for decoding keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Layout {
    /// US 104-key (default).
    #[default]
    Us104,
    /// UK 105-key.
    Uk105,
    /// German 105-key.
    De105,
    /// French AZERTY.
    Azerty,
    /// Colemak.
    Colemak,
    /// Dvorak 104-key.
    Dvorak104,
    /// Programmer Dvorak.
    DvorakProgrammer104,
    /// Japanese 109-key.
    Jis109,
    /// Norwegian 105-key.
    No105,
    /// Finnish/Swedish 105-key.
    FiSe105,
}

impl Layout {
    /// Every layout, e.g. for a shell command listing them.
    pub const ALL: [Layout; 10] = [
        Layout::Us104,
        Layout::Uk105,
        Layout::De105,
        Layout::Azerty,
        Layout::Colemak,
        Layout::Dvorak104,
        Layout::DvorakProgrammer104,
        Layout::Jis109,
        Layout::No105,
        Layout::FiSe105,
    ];

    /// Short name ("us", "uk", "de", ...).
    pub fn name(self) -> &'static str {
        match self {
            Layout::Us104 => "us",
            Layout::Uk105 => "uk",
            Layout::De105 => "de",
            Layout::Azerty => "azerty",
            Layout::Colemak => "colemak",
            Layout::Dvorak104 => "dvorak",
            Layout::DvorakProgrammer104 => "dvp",
            Layout::Jis109 => "jis",
            Layout::No105 => "no",
            Layout::FiSe105 => "fi",
        }
    }

    /// Looks a layout up by its short name.
    pub fn from_name(name: &str) -> Option<Layout> {
        Layout::ALL
            .into_iter()
            .find(|l| l.name().eq_ignore_ascii_case(name))
    }

    pub(crate) fn to_any(self) -> AnyLayout {
        match self {
            Layout::Us104 => AnyLayout::Us104Key(layouts::Us104Key),
            Layout::Uk105 => AnyLayout::Uk105Key(layouts::Uk105Key),
            Layout::De105 => AnyLayout::De105Key(layouts::De105Key),
            Layout::Azerty => AnyLayout::Azerty(layouts::Azerty),
            Layout::Colemak => AnyLayout::Colemak(layouts::Colemak),
            Layout::Dvorak104 => AnyLayout::Dvorak104Key(layouts::Dvorak104Key),
            Layout::DvorakProgrammer104 => AnyLayout::DVP104Key(layouts::DVP104Key),
            Layout::Jis109 => AnyLayout::Jis109Key(layouts::Jis109Key),
            Layout::No105 => AnyLayout::No105Key(layouts::No105Key),
            Layout::FiSe105 => AnyLayout::FiSe105Key(layouts::FiSe105Key),
        }
    }
}

impl fmt::Display for Layout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
