//! Who spoke when in a call, from each audio packet's level (the RTP
//! audio-level header extension, RFC 6464: 0 is the loudest, 127 silence,
//! in -dBov). Sans-IO: fed each sound frame's place on the recording's
//! timeline and level, it keeps the stretches each participant spoke.
//!
//! A participant speaks from a packet louder than [`LOUD`] until no packet
//! has been that loud for [`HANGOVER_US`] (the pauses between words stay
//! in one stretch); a stretch ends at its last loud packet's end.

use std::collections::HashMap;

use crate::track::Speech;

/// A packet at this level or louder is speech (-50 dBov: well above a
/// quiet room, well below a voice).
pub const LOUD: u8 = 50;

/// Silence shorter than this does not end a stretch, µs.
pub const HANGOVER_US: i64 = 800_000;

/// A sound packet's length when not known, µs (Opus in WebRTC: 20 ms).
const PACKET_US: i64 = 20_000;

/// Most stretches kept per participant: past it, each new one joins their
/// last (a sender whose level flips on and off on purpose cannot grow the
/// recording's document without end).
pub const MAX_PER_PARTICIPANT: usize = 2_000;

#[derive(Debug, Default)]
struct Open {
    start_us: i64,
    last_loud_end_us: i64,
}

/// The stretches spoken so far, per participant.
#[derive(Debug, Default)]
pub struct Speakers {
    open: HashMap<String, Open>,
    done: Vec<Speech>,
    /// Per participant: how many stretches are in `done`, and where
    /// their last is.
    kept: HashMap<String, (usize, usize)>,
}

impl Speakers {
    /// A sound frame of `participant` placed at `at_us`; `level` as the
    /// extension carries it (None: the sender sends none).
    pub fn sound(&mut self, participant: &str, at_us: i64, level: Option<u8>) {
        let loud = level.is_some_and(|l| l <= LOUD);
        if let Some(o) = self.open.get_mut(participant) {
            if at_us - o.last_loud_end_us > HANGOVER_US {
                let o = self.open.remove(participant).unwrap_or_default();
                self.close(participant, o);
            } else {
                if loud {
                    o.last_loud_end_us = o.last_loud_end_us.max(at_us + PACKET_US);
                }
                return;
            }
        }
        if loud {
            self.open.insert(
                participant.to_string(),
                Open {
                    start_us: at_us,
                    last_loud_end_us: at_us + PACKET_US,
                },
            );
        }
    }

    /// Who is speaking at `at_us` (their last loud packet at most
    /// [`HANGOVER_US`] before).
    pub fn speaking_at(&self, at_us: i64) -> Vec<String> {
        let mut v: Vec<String> = self
            .open
            .iter()
            .filter(|(_, o)| at_us - o.last_loud_end_us <= HANGOVER_US)
            .map(|(p, _)| p.clone())
            .collect();
        v.sort();
        v
    }

    /// `participant` left or the recording paused: what they were saying
    /// ends at their last loud packet.
    pub fn quiet(&mut self, participant: &str) {
        if let Some(o) = self.open.remove(participant) {
            self.close(participant, o);
        }
    }

    /// The recording paused: every stretch ends.
    pub fn quiet_all(&mut self) {
        let open: Vec<(String, Open)> = self.open.drain().collect();
        for (p, o) in open {
            self.close(&p, o);
        }
    }

    fn close(&mut self, participant: &str, o: Open) {
        let end_s = o.last_loud_end_us as f64 / 1e6;
        if let Some((n, last)) = self.kept.get(participant).copied()
            && n >= MAX_PER_PARTICIPANT
        {
            self.done[last].end_s = end_s;
            return;
        }
        let (n, last) = self.kept.entry(participant.to_string()).or_default();
        *n += 1;
        *last = self.done.len();
        self.done.push(Speech {
            participant: participant.to_string(),
            start_s: o.start_us as f64 / 1e6,
            end_s,
        });
    }

    /// Every stretch, in the order they began.
    pub fn finish(mut self) -> Vec<Speech> {
        self.quiet_all();
        self.done.sort_by(|a, b| a.start_s.total_cmp(&b.start_s));
        self.done
    }
}

/// The stretches of `participant` in `speech`, as (start, end) seconds.
pub fn of(speech: &[Speech], participant: &str) -> Vec<(f64, f64)> {
    speech
        .iter()
        .filter(|s| s.participant == participant)
        .map(|s| (s.start_s, s.end_s))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `who` sends a packet every 20 ms from `from_ms` to `to_ms` at `level`.
    fn talk(s: &mut Speakers, who: &str, from_ms: i64, to_ms: i64, level: u8) {
        let mut t = from_ms;
        while t < to_ms {
            s.sound(who, t * 1000, Some(level));
            t += 20;
        }
    }

    #[test]
    fn two_people_taking_turns_make_a_stretch_each_turn() {
        let mut s = Speakers::default();
        // Ann speaks 0-2 s with a 0.5 s pause inside, then is quiet; Bob
        // speaks 3-4 s; Ann again 5-6 s. Quiet packets are level 127.
        talk(&mut s, "Ann", 0, 1000, 20);
        talk(&mut s, "Ann", 1000, 1500, 127);
        talk(&mut s, "Ann", 1500, 2000, 30);
        talk(&mut s, "Ann", 2000, 5000, 127);
        talk(&mut s, "Bob", 0, 3000, 127);
        talk(&mut s, "Bob", 3000, 4000, 10);
        talk(&mut s, "Bob", 4000, 7000, 110);
        talk(&mut s, "Ann", 5000, 6000, 25);
        let got = s.finish();
        let want = [("Ann", 0.0, 2.0), ("Bob", 3.0, 4.0), ("Ann", 5.0, 6.0)];
        assert_eq!(got.len(), 3, "{got:?}");
        for (g, (who, a, b)) in got.iter().zip(want) {
            assert_eq!(g.participant, who);
            assert!(
                (g.start_s - a).abs() < 0.001 && (g.end_s - b).abs() < 0.001,
                "{g:?}"
            );
        }
    }

    #[test]
    fn who_speaks_now_is_known_while_they_speak_and_a_moment_after() {
        let mut s = Speakers::default();
        talk(&mut s, "Ann", 0, 1000, 20);
        talk(&mut s, "Bob", 0, 1000, 127);
        assert_eq!(s.speaking_at(1_000_000), ["Ann"]);
        assert_eq!(s.speaking_at(1_500_000), ["Ann"], "the hangover");
        assert!(s.speaking_at(2_000_000).is_empty());
        talk(&mut s, "Bob", 1000, 2000, 10);
        assert_eq!(s.speaking_at(2_000_000), ["Bob"]);
    }

    #[test]
    fn silence_and_senders_without_levels_make_nothing() {
        let mut s = Speakers::default();
        talk(&mut s, "Ann", 0, 5000, 127);
        talk(&mut s, "Ann", 5000, 6000, 51);
        for t in 0..100 {
            s.sound("Cat", t * 20_000, None);
        }
        assert!(s.finish().is_empty());
    }

    #[test]
    fn a_level_flipping_on_and_off_keeps_a_bounded_timeline() {
        let mut s = Speakers::default();
        // A packet loud, then 0.9 s quiet, for 3 hours: 12,000 stretches.
        for k in 0..12_000i64 {
            s.sound("Mallory", k * 900_000, Some(0));
            s.sound("Mallory", k * 900_000 + 880_000, Some(127));
        }
        talk(&mut s, "Ann", 0, 2000, 20);
        let got = s.finish();
        let mallory: Vec<_> = got.iter().filter(|x| x.participant == "Mallory").collect();
        assert_eq!(mallory.len(), MAX_PER_PARTICIPANT);
        // The last one reaches the end of the last flip.
        assert!(
            mallory.last().unwrap().end_s > 10_799.0,
            "{:?}",
            mallory.last()
        );
        assert_eq!(of(&got, "Ann").len(), 1, "others unaffected");
    }

    #[test]
    fn leaving_mid_sentence_ends_the_stretch_at_the_last_word() {
        let mut s = Speakers::default();
        talk(&mut s, "Ann", 0, 700, 20);
        s.quiet("Ann");
        talk(&mut s, "Ann", 3000, 3100, 20);
        let got = s.finish();
        assert_eq!(got.len(), 2);
        assert!((got[0].end_s - 0.7).abs() < 0.001, "{got:?}");
        assert_eq!(of(&got, "Ann").len(), 2);
    }
}
