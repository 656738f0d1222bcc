//! A bounded HID report-descriptor parser (HID 1.11 §6.2.2) that finds the
//! keyboard in it: the Input fields of usage page 7 (Keyboard/Keypad, HID
//! Usage Tables 1.12 §10) inside a Generic Desktop / Keyboard application
//! collection (HUT 1.12 §4, usage page 0x01 usage 0x06), and the LED Output
//! fields (usage page 8, HUT 1.12 §11) beside them.
//!
//! It runs at enumeration, also in panic mode, so it allocates nothing: the
//! global item stack (Push/Pop, §6.2.2.7), the collection nesting and the
//! local usage list are fixed arrays, and a descriptor that needs more gives
//! an error instead of being parsed wrongly. Every item's length is checked
//! against the bytes there are. The result is a fixed-size
//! [`ReportLayout`]; `hid/input.rs` decodes reports with it.
//!
//! The structure follows Linux `drivers/hid/hid-core.c` (`hid_parse_report`,
//! `hid_parser_global`, `hid_parser_local`, `hid_parser_main`), including
//! its reading of Logical Maximum as unsigned when Logical Minimum is not
//! negative, and FreeBSD `sys/dev/hid/hid.c` (`hid_get_item`, `hid_locate`)
//! as `ukbd` uses it.
#![forbid(unsafe_code)]

use crate::descriptor::DescriptorError;

/// Key fields a layout holds (a modifier bitfield, a key array, or an NKRO
/// bitmap in a few pieces around padding). Every device slot holds a
/// layout, so it is kept small: the controller's device table is built on
/// the boot stack.
pub(crate) const MAX_KEY_FIELDS: usize = 3;
/// [`LedField::bits`] entry of an LED the report does not have.
pub(crate) const NO_LED: u16 = u16::MAX;
/// Global item stack depth (Linux `HID_GLOBAL_STACK_SIZE`).
const GLOBAL_STACK_DEPTH: usize = 4;
/// Collection nesting depth.
const MAX_COLLECTION_DEPTH: usize = 16;
/// Local Usage items kept per main item; further ones are ignored (they only
/// describe fields of no interest to a keyboard: a long Consumer list).
const MAX_USAGES: usize = 32;
/// The longest report of any one ID, in bits: Linux's `HID_MAX_BUFFER_SIZE`
/// is 16 KiB; 8 KiB is more than any keyboard needs.
const MAX_REPORT_BITS: u32 = 8 * 8192;

/// Usage page Generic Desktop (HUT 1.12 §4), usage Keyboard.
const USAGE_KEYBOARD_APPLICATION: u32 = 0x0001_0006;
/// Usage page Keyboard/Keypad (HUT 1.12 §10).
const PAGE_KEYBOARD: u16 = 0x07;
/// Usage page LEDs (HUT 1.12 §11).
const PAGE_LEDS: u16 = 0x08;
/// Collection type Application (HID 1.11 §6.2.2.6).
const COLLECTION_APPLICATION: u32 = 0x01;

/// One Input field carrying keys (usage page 7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyField {
    /// A variable field of 1-bit elements: bit `i` set means usage
    /// `first + i` is down (the modifier byte, an NKRO bitmap).
    Bitmap {
        /// Bit offset in the report (after the Report ID byte).
        offset: u16,
        /// Usage of the first bit.
        first: u8,
        /// Number of bits.
        count: u16,
    },
    /// An array field: each element holds the index of a usage that is
    /// down (the six-key array of a boot-like report).
    Array {
        /// Bit offset of the first element.
        offset: u16,
        /// Bits per element (1..=16).
        size: u8,
        /// Number of elements.
        count: u16,
        /// Logical Minimum: the value naming usage `first` (a key array
        /// with one outside the 16-bit range is not used).
        logical_min: i16,
        /// Usage Minimum: the usage of value `logical_min`.
        first: u8,
        /// The last usage an element can name: Usage Maximum, or the
        /// usage of Logical Maximum if lower, at most 0xff (usages past it
        /// on page 7 are reserved, HUT 1.12 §10).
        last: u8,
    },
}

/// Where the LED bits of the keyboard's output report are (HUT 1.12 §11:
/// usages 1 Num Lock, 2 Caps Lock, 3 Scroll Lock).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LedField {
    /// Report ID of the output report (0: IDs are not used).
    pub(crate) report_id: u8,
    /// Bytes of the output report (without the Report ID byte), at most 8.
    pub(crate) bytes: u8,
    /// Bit offsets of Num, Caps and Scroll Lock (after the Report ID);
    /// [`NO_LED`] for one it does not have.
    pub(crate) bits: [u16; 3],
}

impl Default for LedField {
    fn default() -> Self {
        Self {
            report_id: 0,
            bytes: 0,
            bits: [NO_LED; 3],
        }
    }
}

/// The keyboard's input report, as its report descriptor describes it: a
/// fixed-size, allocation-free summary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ReportLayout {
    /// Report ID of the keyboard's input report; 0 when the descriptor uses
    /// no Report IDs (then no report carries an ID byte, HID 1.11 §6.2.2.7).
    pub(crate) report_id: u8,
    /// Bytes of that input report, without the Report ID byte.
    pub(crate) report_bytes: u16,
    /// The key fields, in descriptor order.
    pub(crate) fields: [Option<KeyField>; MAX_KEY_FIELDS],
    /// The LED output report, if the keyboard has one.
    pub(crate) leds: Option<LedField>,
}

// Every device slot holds a layout, and debug builds keep several copies
// of the controller on the boot stack while it starts (a 180-byte layout
// overflowed panicbench's 64 KiB boot stack into its page tables): grow it
// only with that in mind.
const _: () = assert!(core::mem::size_of::<ReportLayout>() <= 44);

impl ReportLayout {
    /// Bytes of the keyboard's input report on the wire, with its ID byte.
    pub(crate) fn wire_bytes(&self) -> usize {
        usize::from(self.report_bytes) + usize::from(self.report_id != 0)
    }

    /// Is this the boot report shape (HID 1.11 Appendix B.1): no Report ID,
    /// 8 bytes, modifiers in byte 0, six 8-bit keys from byte 2? Reports of
    /// such a keyboard decode the same in either protocol.
    #[cfg(test)]
    pub(crate) fn is_boot_shaped(&self) -> bool {
        let modifiers = Some(KeyField::Bitmap {
            offset: 0,
            first: 0xe0,
            count: 8,
        });
        let keys = matches!(
            self.fields[1],
            Some(KeyField::Array {
                offset: 16,
                size: 8,
                count: 6,
                logical_min: 0,
                first: 0,
                ..
            })
        );
        self.report_id == 0
            && self.report_bytes == 8
            && self.fields[0] == modifiers
            && keys
            && self.fields[2].is_none()
    }
}

/// The global item state (HID 1.11 §6.2.2.7).
#[derive(Debug, Clone, Copy, Default)]
struct Globals {
    usage_page: u16,
    logical_min: i32,
    logical_max: i32,
    report_size: u32,
    report_count: u32,
    report_id: u8,
}

/// The local item state (HID 1.11 §6.2.2.8), cleared after each main item.
#[derive(Debug, Clone, Copy)]
struct Locals {
    /// Usages: the page in the high 16 bits when given (4-byte Usage),
    /// else resolved with the Usage Page at the main item (as Linux does).
    usages: [(u32, bool); MAX_USAGES],
    count: usize,
    minimum: Option<(u32, bool)>,
    maximum: Option<(u32, bool)>,
}

impl Locals {
    const fn new() -> Self {
        Self {
            usages: [(0, false); MAX_USAGES],
            count: 0,
            minimum: None,
            maximum: None,
        }
    }
}

/// A short item (HID 1.11 §6.2.2.2).
#[derive(Debug, Clone, Copy)]
struct Item {
    kind: u8,
    tag: u8,
    size: usize,
    data: u32,
}

impl Item {
    /// The data sign-extended from its size (HID 1.11 §6.2.2.7: Logical
    /// Minimum and friends are signed).
    fn signed(&self) -> i32 {
        match self.size {
            1 => i32::from(self.data as u8 as i8),
            2 => i32::from(self.data as u16 as i16),
            _ => self.data as i32,
        }
    }
}

/// A parse error at byte `offset`.
fn bad(offset: usize, what: &'static str) -> DescriptorError {
    DescriptorError::BadReportDescriptor {
        offset: offset.min(usize::from(u16::MAX)) as u16,
        what,
    }
}

/// The next item at `at`: `Ok(None)` at the end, long items (§6.2.2.3)
/// skipped whole. Returns the item and the offset after it.
fn next_item(bytes: &[u8], at: usize) -> Result<Option<(Item, usize)>, DescriptorError> {
    let mut at = at;
    loop {
        let Some(&prefix) = bytes.get(at) else {
            return Ok(None);
        };
        if prefix == 0xfe {
            let size = *bytes.get(at + 1).ok_or(bad(at, "long item cut short"))?;
            let end = at + 3 + usize::from(size);
            if end > bytes.len() {
                return Err(bad(at, "long item runs past the end"));
            }
            at = end;
            continue;
        }
        let size = [0, 1, 2, 4][usize::from(prefix & 3)];
        let data = bytes
            .get(at + 1..at + 1 + size)
            .ok_or(bad(at, "item data runs past the end"))?;
        let mut value = [0u8; 4];
        value[..size].copy_from_slice(data);
        let item = Item {
            kind: (prefix >> 2) & 3,
            tag: prefix >> 4,
            size,
            data: u32::from_le_bytes(value),
        };
        return Ok(Some((item, at + 1 + size)));
    }
}

/// The parser's state while it walks the items.
struct Parser {
    globals: Globals,
    stack: [Globals; GLOBAL_STACK_DEPTH],
    stack_len: usize,
    locals: Locals,
    /// Collection nesting: depth, and the depth at which the keyboard's
    /// application collection opened.
    depth: usize,
    keyboard_depth: Option<usize>,
    /// Bits so far of each input and output report, by Report ID.
    input_bits: [u16; 256],
    output_bits: [u16; 256],
    uses_ids: bool,
    /// The keyboard report's ID, once its first key field was seen.
    keyboard_id: Option<u8>,
    fields: [Option<KeyField>; MAX_KEY_FIELDS],
    field_count: usize,
    leds: Option<LedField>,
    /// Byte offset of the item being handled, for errors.
    at: usize,
}

/// Parses a report descriptor and returns the layout of its keyboard
/// report. A descriptor without a keyboard application collection that has
/// key fields gives `Err(DescriptorError::NotAKeyboard)`; a malformed one a
/// `BadReportDescriptor` naming the byte offset and what is wrong.
pub(crate) fn parse(bytes: &[u8]) -> Result<ReportLayout, DescriptorError> {
    let mut parser = Parser {
        globals: Globals::default(),
        stack: [Globals::default(); GLOBAL_STACK_DEPTH],
        stack_len: 0,
        locals: Locals::new(),
        depth: 0,
        keyboard_depth: None,
        input_bits: [0; 256],
        output_bits: [0; 256],
        uses_ids: false,
        keyboard_id: None,
        fields: [None; MAX_KEY_FIELDS],
        field_count: 0,
        leds: None,
        at: 0,
    };
    let mut at = 0;
    while let Some((item, next)) = next_item(bytes, at)? {
        parser.at = at;
        match item.kind {
            0 => parser.main(item)?,
            1 => parser.global(item)?,
            2 => parser.local(item),
            _ => {} // reserved item type: ignored, as Linux does
        }
        at = next;
    }
    if parser.depth != 0 {
        return Err(bad(bytes.len(), "collection not closed"));
    }
    parser.finish()
}

impl Parser {
    fn global(&mut self, item: Item) -> Result<(), DescriptorError> {
        let g = &mut self.globals;
        match item.tag {
            0 => g.usage_page = item.data as u16,
            1 => g.logical_min = item.signed(),
            // unsigned unless the minimum is negative (Linux hid_parser_global)
            2 if g.logical_min < 0 => g.logical_max = item.signed(),
            2 => g.logical_max = item.data.min(i32::MAX as u32) as i32,
            7 => {
                if item.data == 0 || item.data > 256 {
                    return Err(bad(self.at, "Report Size not in 1..=256"));
                }
                g.report_size = item.data;
            }
            8 => {
                if item.data == 0 || item.data > 255 {
                    return Err(bad(self.at, "Report ID not in 1..=255"));
                }
                g.report_id = item.data as u8;
                self.uses_ids = true;
            }
            9 => {
                if item.data > MAX_REPORT_BITS {
                    return Err(bad(self.at, "Report Count too large"));
                }
                g.report_count = item.data;
            }
            10 => {
                let slot = self
                    .stack
                    .get_mut(self.stack_len)
                    .ok_or(bad(self.at, "Push: global item stack full"))?;
                *slot = self.globals;
                self.stack_len += 1;
            }
            11 => {
                self.stack_len = self
                    .stack_len
                    .checked_sub(1)
                    .ok_or(bad(self.at, "Pop without Push"))?;
                self.globals = self.stack[self.stack_len];
            }
            _ => {} // physical range, units: no meaning for keys
        }
        Ok(())
    }

    fn local(&mut self, item: Item) {
        let usage = (item.data, item.size == 4);
        let l = &mut self.locals;
        match item.tag {
            0 => {
                if let Some(slot) = l.usages.get_mut(l.count) {
                    *slot = usage;
                    l.count += 1;
                }
            }
            1 => l.minimum = Some(usage),
            2 => l.maximum = Some(usage),
            _ => {} // designators, strings, delimiters
        }
    }

    /// A usage with its page: the Usage Page in effect now unless the usage
    /// carried one (HID 1.11 §6.2.2.8).
    fn full_usage(&self, (usage, extended): (u32, bool)) -> u32 {
        if extended {
            usage
        } else {
            (u32::from(self.globals.usage_page) << 16) | (usage & 0xffff)
        }
    }

    fn main(&mut self, item: Item) -> Result<(), DescriptorError> {
        let result = match item.tag {
            8 => self.input(item.data),
            9 => self.output(item.data),
            0xb => Ok(()), // Feature: no bearing on input reports
            0xa => self.collection(item.data),
            0xc => self.end_collection(),
            _ => Ok(()), // reserved main tag: ignored, as Linux does
        };
        self.locals = Locals::new();
        result
    }

    fn collection(&mut self, kind: u32) -> Result<(), DescriptorError> {
        if self.depth >= MAX_COLLECTION_DEPTH {
            return Err(bad(self.at, "collections nested too deep"));
        }
        let usage = if self.locals.count > 0 {
            Some(self.full_usage(self.locals.usages[0]))
        } else {
            self.locals.minimum.map(|u| self.full_usage(u))
        };
        if self.keyboard_depth.is_none()
            && self.keyboard_id.is_none()
            && kind == COLLECTION_APPLICATION
            && usage == Some(USAGE_KEYBOARD_APPLICATION)
        {
            self.keyboard_depth = Some(self.depth);
        }
        self.depth += 1;
        Ok(())
    }

    fn end_collection(&mut self) -> Result<(), DescriptorError> {
        self.depth = self
            .depth
            .checked_sub(1)
            .ok_or(bad(self.at, "End Collection without Collection"))?;
        if self.keyboard_depth == Some(self.depth) {
            self.keyboard_depth = None;
        }
        Ok(())
    }

    /// Adds a field of `report_size × report_count` bits to `bits[id]` and
    /// returns its offset.
    fn advance(bits: &mut [u16; 256], g: &Globals, at: usize) -> Result<u16, DescriptorError> {
        let offset = bits[usize::from(g.report_id)];
        let total = g
            .report_size
            .checked_mul(g.report_count)
            .and_then(|n| n.checked_add(u32::from(offset)))
            .filter(|&n| n <= MAX_REPORT_BITS && n <= u32::from(u16::MAX))
            .ok_or(bad(at, "report longer than 8 KiB"))?;
        bits[usize::from(g.report_id)] = total as u16;
        Ok(offset)
    }

    /// The usage of element `i` of the current main item (HID 1.11
    /// §6.2.2.8: with more elements than usages the last one repeats).
    fn element_usage(&self, i: u32) -> Option<u32> {
        if let (Some(min), Some(max)) = (self.locals.minimum, self.locals.maximum) {
            let (min, max) = (self.full_usage(min), self.full_usage(max));
            return Some(min.saturating_add(i).min(max));
        }
        let n = self.locals.count.checked_sub(1)?;
        let index = (i as usize).min(n);
        Some(self.full_usage(self.locals.usages[index]))
    }

    fn input(&mut self, flags: u32) -> Result<(), DescriptorError> {
        let g = self.globals;
        let offset = Self::advance(&mut self.input_bits, &g, self.at)?;
        let constant = flags & 1 != 0;
        if constant || self.keyboard_depth.is_none() || g.report_count == 0 {
            return Ok(());
        }
        let Some(first) = self.element_usage(0) else {
            return Ok(());
        };
        if first >> 16 != u32::from(PAGE_KEYBOARD) {
            return Ok(());
        }
        if self.keyboard_id.is_some_and(|id| id != g.report_id) {
            return Ok(()); // keys in a second report of the collection: not used
        }
        let variable = flags & 2 != 0;
        if variable && g.report_size == 1 {
            self.bitmap(offset, g.report_count)
        } else if !variable && g.report_size <= 16 {
            self.array(offset, &g, first)
        } else {
            Ok(()) // multi-bit variable key fields: not a thing keyboards send
        }
    }

    /// Records a variable 1-bit field as bitmaps of consecutive page-7 usages.
    fn bitmap(&mut self, offset: u16, count: u32) -> Result<(), DescriptorError> {
        let mut run: Option<(u16, u8, u16)> = None; // (offset, first usage, count)
        let mut previous = None;
        for i in 0..count {
            let usage = self.element_usage(i).unwrap_or(0);
            // an element past the usages repeats the last one: padding here
            let repeated = previous == Some(usage);
            previous = Some(usage);
            let key =
                (usage >> 16 == u32::from(PAGE_KEYBOARD) && usage & 0xffff <= 0xff && !repeated)
                    .then_some(usage as u8);
            let bit = offset + i as u16;
            run = match (run, key) {
                (Some((o, f, n)), Some(k)) if u16::from(f) + n == u16::from(k) => {
                    Some((o, f, n + 1))
                }
                (previous, key) => {
                    if let Some((o, f, n)) = previous {
                        self.push_field(KeyField::Bitmap {
                            offset: o,
                            first: f,
                            count: n,
                        })?;
                    }
                    key.map(|k| (bit, k, 1))
                }
            };
        }
        if let Some((o, f, n)) = run {
            self.push_field(KeyField::Bitmap {
                offset: o,
                first: f,
                count: n,
            })?;
        }
        Ok(())
    }

    /// Records an array field; its usages must be a range on page 7.
    fn array(&mut self, offset: u16, g: &Globals, first: u32) -> Result<(), DescriptorError> {
        let last = match (self.locals.maximum, self.locals.count) {
            (Some(max), _) => self.full_usage(max),
            (None, n) if n > 0 => self.full_usage(self.locals.usages[n - 1]),
            _ => first,
        };
        let listed = self.locals.maximum.is_none() && self.locals.minimum.is_none();
        let contiguous = (0..self.locals.count)
            .all(|k| self.full_usage(self.locals.usages[k]) == first.wrapping_add(k as u32));
        if last >> 16 != first >> 16 || last < first || (listed && !contiguous) {
            return Ok(()); // a usage list the fixed layout cannot hold
        }
        if g.logical_max < g.logical_min {
            return Err(bad(self.at, "key array with Logical Maximum below Minimum"));
        }
        let first = first & 0xffff;
        let Ok(logical_min) = i16::try_from(g.logical_min) else {
            return Ok(()); // not a key array any keyboard sends
        };
        if first > 0xff {
            return Ok(()); // reserved usages only: no keys
        }
        // the usage of Logical Maximum bounds the usages too
        let span = i64::from(g.logical_max) - i64::from(g.logical_min);
        let last = i64::from(last & 0xffff)
            .min(i64::from(first) + span)
            .min(0xff);
        self.push_field(KeyField::Array {
            offset,
            size: g.report_size as u8,
            count: g.report_count.min(u32::from(u16::MAX)) as u16,
            logical_min,
            first: first as u8,
            last: last as u8,
        })
    }

    fn push_field(&mut self, field: KeyField) -> Result<(), DescriptorError> {
        let slot = self
            .fields
            .get_mut(self.field_count)
            .ok_or(bad(self.at, "more than 3 key fields"))?;
        *slot = Some(field);
        self.field_count += 1;
        self.keyboard_id = Some(self.globals.report_id);
        Ok(())
    }

    /// Output items: the LED bits of the keyboard collection.
    fn output(&mut self, flags: u32) -> Result<(), DescriptorError> {
        let g = self.globals;
        let offset = Self::advance(&mut self.output_bits, &g, self.at)?;
        if flags & 1 != 0 || flags & 2 == 0 || g.report_size != 1 || self.keyboard_depth.is_none() {
            return Ok(());
        }
        if self.leds.is_some_and(|l| l.report_id != g.report_id) {
            return Ok(());
        }
        let mut leds = self.leds.unwrap_or(LedField {
            report_id: g.report_id,
            ..LedField::default()
        });
        for i in 0..g.report_count {
            let usage = self.element_usage(i).unwrap_or(0);
            if usage >> 16 == u32::from(PAGE_LEDS)
                && let Some(slot) = (usage & 0xffff)
                    .checked_sub(1)
                    .and_then(|u| leds.bits.get_mut(u as usize))
            {
                *slot = offset + i as u16;
            }
        }
        if leds.bits.iter().any(|&b| b != NO_LED) {
            self.leds = Some(leds);
        }
        Ok(())
    }

    fn finish(self) -> Result<ReportLayout, DescriptorError> {
        let Some(id) = self.keyboard_id else {
            return Err(DescriptorError::NotAKeyboard);
        };
        if id == 0 && self.uses_ids {
            return Err(bad(0, "key fields before the first Report ID"));
        }
        let bits = self.input_bits[usize::from(id)];
        let leds = self.leds.map(|l| LedField {
            bytes: self.output_bits[usize::from(l.report_id)]
                .div_ceil(8)
                .min(8) as u8,
            ..l
        });
        Ok(ReportLayout {
            report_id: id,
            report_bytes: bits.div_ceil(8),
            fields: self.fields,
            leds,
        })
    }
}
