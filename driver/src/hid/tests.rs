extern crate std;
use super::*;
use proptest::prelude::*;
use std::vec::Vec;

fn drain(k: &mut KeyboardState) -> Vec<DecodedKey> {
    let mut v = Vec::new();
    while let Some(key) = k.queue.pop() {
        v.push(key);
    }
    v
}

const MS: u64 = 1000;

#[test]
fn typing_with_shift_and_ctrl() {
    let mut k = KeyboardState::new(Layout::Us104, Repeat::default());
    let mut prev = [0; 8];
    k.handle_report(&mut prev, [0x02, 0, 0x04, 0, 0, 0, 0, 0], 0); // Shift+a
    k.handle_report(&mut prev, [0, 0, 0, 0, 0, 0, 0, 0], 0);
    k.handle_report(&mut prev, [0x01, 0, 0x06, 0, 0, 0, 0, 0], 0); // Ctrl+c
    k.handle_report(&mut prev, [0, 0, 0x28, 0, 0, 0, 0, 0], 0); // Enter
    k.handle_report(&mut prev, [0, 0, 0x52, 0, 0, 0, 0, 0], 0); // Up
    assert_eq!(
        drain(&mut k),
        [
            DecodedKey::Unicode('A'),
            DecodedKey::Unicode('\u{3}'),
            DecodedKey::Unicode('\n'),
            DecodedKey::RawKey(KeyCode::ArrowUp)
        ]
    );
}

#[test]
fn caps_lock_toggles_led_and_case() {
    let mut k = KeyboardState::new(Layout::Us104, Repeat::default());
    let mut prev = [0; 8];
    assert!(k.leds().num_lock);
    let o = k.handle_report(&mut prev, [0, 0, 0x39, 0, 0, 0, 0, 0], 0);
    assert!(o.leds_changed);
    assert!(k.leds().caps_lock);
    assert_eq!(k.leds().report_byte(), 0b011);
    k.handle_report(&mut prev, [0; 8], 0);
    k.handle_report(&mut prev, [0, 0, 0x04, 0, 0, 0, 0, 0], 0);
    assert_eq!(drain(&mut k), [DecodedKey::Unicode('A')]);
}

#[test]
fn rollover_report_changes_nothing() {
    let mut k = KeyboardState::new(Layout::Us104, Repeat::default());
    let mut prev = [0; 8];
    k.handle_report(&mut prev, [0, 0, 0x04, 0, 0, 0, 0, 0], 0);
    let o = k.handle_report(&mut prev, [0, 0, 1, 1, 1, 1, 1, 1], 0);
    assert!(o.rollover);
    assert_eq!(prev, [0, 0, 0x04, 0, 0, 0, 0, 0]);
    k.handle_report(&mut prev, [0, 0, 0x04, 0x05, 0, 0, 0, 0], 0);
    assert_eq!(
        drain(&mut k),
        [DecodedKey::Unicode('a'), DecodedKey::Unicode('b')]
    );
}

#[test]
fn repeat_timing_with_fake_clock() {
    let mut k = KeyboardState::new(
        Layout::Us104,
        Repeat {
            delay_ms: 250,
            rate_hz: 10,
        },
    );
    let mut prev = [0; 8];
    k.handle_report(&mut prev, [0, 0, 0x04, 0, 0, 0, 0, 0], 1000 * MS);
    assert_eq!(drain(&mut k).len(), 1);
    assert_eq!(k.tick(1000 * MS + 249 * MS), 0);
    assert_eq!(k.tick(1000 * MS + 250 * MS), 1);
    assert_eq!(k.tick(1000 * MS + 349 * MS), 0);
    assert_eq!(k.tick(1000 * MS + 350 * MS), 1);
    assert_eq!(k.tick(1000 * MS + 450 * MS), 1);
    assert_eq!(drain(&mut k), [DecodedKey::Unicode('a'); 3]);
    // a long stall produces no burst (the release may be unread), then
    // the repeat resumes one period later
    assert_eq!(k.tick(1000 * MS + 10_000 * MS), 0);
    assert_eq!(k.tick(1000 * MS + 10_050 * MS), 0);
    assert_eq!(k.tick(1000 * MS + 10_100 * MS), 1);
    // a little late (within REPEAT_LATE_MAX_US) is still on time
    assert_eq!(k.tick(1000 * MS + 10_300 * MS), 2);
    assert_eq!(drain(&mut k).len(), 3);
    // modifiers are not repeated, and pressing one doesn't stop the repeat
    k.handle_report(
        &mut prev,
        [0x02, 0, 0x04, 0, 0, 0, 0, 0],
        1000 * MS + 10_300 * MS,
    );
    drain(&mut k);
    assert_eq!(k.tick(1000 * MS + 10_400 * MS), 1);
    assert_eq!(drain(&mut k), [DecodedKey::Unicode('A')]);
    // release stops it
    k.handle_report(&mut prev, [0; 8], 1000 * MS + 10_450 * MS);
    assert_eq!(k.tick(1000 * MS + 20_000 * MS), 0);
    // disabled repeat
    k.set_repeat(Repeat {
        delay_ms: 0,
        rate_hz: 10,
    });
    k.handle_report(&mut prev, [0, 0, 0x04, 0, 0, 0, 0, 0], 0);
    assert_eq!(k.tick(u64::MAX / 2), 0);
}

/// A key pressed and released while the poller stalls: the release report
/// is read only after the stall, so the first tick after it must not repeat
/// the key (a busy host once turned `bt` into `bttttt` at `db>`).
#[test]
fn a_stalled_poller_does_not_repeat_a_released_key() {
    let mut k = KeyboardState::new(Layout::Us104, Repeat::default());
    let mut prev = [0; 8];
    k.handle_report(&mut prev, [0, 0, 0x17, 0, 0, 0, 0, 0], 1000 * MS);
    assert_eq!(k.tick(1000 * MS + 12 * MS), 0);
    // 700 ms later (past the 500 ms delay) the poller runs again: the tick
    // comes first, the release report right after it
    assert_eq!(
        k.tick(1000 * MS + 712 * MS),
        0,
        "a stale repeat was produced"
    );
    k.handle_report(&mut prev, [0; 8], 1000 * MS + 713 * MS);
    assert_eq!(k.tick(1000 * MS + 2000 * MS), 0);
    assert_eq!(drain(&mut k), [DecodedKey::Unicode('t')]);
}

#[test]
fn layouts_decode_differently() {
    let mut k = KeyboardState::new(Layout::De105, Repeat::default());
    let mut prev = [0; 8];
    k.handle_report(&mut prev, [0, 0, 0x1c, 0, 0, 0, 0, 0], 0); // HID 'y' position
    k.handle_report(&mut prev, [0; 8], 0);
    k.set_layout(Layout::Us104);
    k.handle_report(&mut prev, [0, 0, 0x1c, 0, 0, 0, 0, 0], 0);
    assert_eq!(
        drain(&mut k),
        [DecodedKey::Unicode('z'), DecodedKey::Unicode('y')]
    );
    assert_eq!(Layout::from_name("AZERTY"), Some(Layout::Azerty));
    assert_eq!(Layout::from_name("xx"), None);
}

#[test]
fn queue_overflow_is_counted() {
    let mut k = KeyboardState::new(Layout::Us104, Repeat::default());
    let mut prev = [0; 8];
    for i in 0..200 {
        let r = if i % 2 == 0 {
            [0, 0, 0x04, 0, 0, 0, 0, 0]
        } else {
            [0; 8]
        };
        k.handle_report(&mut prev, r, 0);
    }
    assert_eq!(k.queue.len(), queue::KEY_QUEUE_CAPACITY);
    assert_eq!(k.queue.dropped, 100 - queue::KEY_QUEUE_CAPACITY as u32);
}

/// Arbitrary report sequences never panic, never exceed the queue, and
/// releasing everything always stops repeat.
#[test]
fn arbitrary_reports() {
    crate::testing::check(
        "HID: arbitrary report sequences",
        2000,
        (
            proptest::collection::vec(any::<[u8; 8]>(), 1..20),
            0usize..10,
        ),
        |(reports, layout)| {
            let mut k = KeyboardState::new(
                Layout::ALL[layout],
                Repeat {
                    delay_ms: 1,
                    rate_hz: 1000,
                },
            );
            let mut prev = [0; 8];
            let mut t = 0;
            for r in reports {
                k.handle_report(&mut prev, r, t);
                t += 700;
                k.tick(t);
                prop_assert!(k.queue.len() <= queue::KEY_QUEUE_CAPACITY);
            }
            k.release_all(&mut prev);
            prop_assert_eq!(prev, [0; 8]);
            prop_assert_eq!(k.tick(u64::MAX / 2), 0);
            Ok(())
        },
    );
}

#[test]
fn ctrl_alt_esc_is_a_break_request_not_a_key() {
    let mut k = KeyboardState::new(Layout::Us104, Repeat::default());
    let mut prev = [0; 8];
    // Esc alone, Ctrl+Esc and Alt+Esc are not the break-in key.
    for mods in [0x00, 0x01, 0x04, 0x40] {
        k.handle_report(&mut prev, [mods, 0, 0x29, 0, 0, 0, 0, 0], 0);
        k.handle_report(&mut prev, [0; 8], 0);
        assert!(!k.take_break(), "modifiers {mods:#x}");
    }
    assert_eq!(drain(&mut k).len(), 4, "four plain Escs queued");
    // Every Ctrl (left, right) with every Alt (left, right).
    for mods in [0x05, 0x11 | 0x04, 0x01 | 0x40, 0x50] {
        k.handle_report(&mut prev, [mods, 0, 0, 0, 0, 0, 0, 0], 0);
        k.handle_report(&mut prev, [mods, 0, 0x29, 0, 0, 0, 0, 0], 0);
        assert!(k.take_break(), "modifiers {mods:#x}");
        assert!(!k.take_break(), "reported once");
        k.handle_report(&mut prev, [0; 8], 0);
        assert_eq!(drain(&mut k), [], "no ESC queued for the break key");
        assert!(!k.repeat_pending(), "the break key does not repeat");
    }
    // Modifiers released: typing is plain again.
    k.handle_report(&mut prev, [0, 0, 0x04, 0, 0, 0, 0, 0], 0);
    assert_eq!(drain(&mut k), [DecodedKey::Unicode('a')]);
}
