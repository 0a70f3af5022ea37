//! The media server task's commands: join, answer, leave, who is there,
//! subscribe, keyframes, close a room.

use std::cmp::Reverse;
use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::Instant;
use tapedeck_core::Code;

use str0m::media::MediaKind;

use super::Sfu;
use crate::rtc::peer::Peer;
use crate::rtc::{Command, PeerId, RoomMedia};
use tapedeck_core::Problem;

impl Sfu {
    pub(super) fn command(&mut self, cmd: Command, candidate: SocketAddr) {
        match cmd {
            Command::Join {
                room,
                limits,
                joiner,
                offer,
                signal,
                reply,
            } => {
                let caller = joiner.caller(room);
                // A participant is a caller: their sessions (a camera over
                // WHIP, the call page, one being replaced) are one person.
                let in_room: HashSet<String> = self
                    .rooms
                    .get(&room)
                    .into_iter()
                    .flatten()
                    .filter_map(|id| self.peers.get(id))
                    .map(|p| p.joiner.caller(p.room))
                    .collect();
                let connecting = self
                    .peers
                    .values()
                    .filter(|p| !p.connected && p.joiner.caller(p.room) == caller)
                    .count();
                let r = if self.peers.len() >= self.limits.max_peers as usize {
                    Err(Problem::new(
                        Code::TooManyPeers,
                        format!("{} peers are connected (rtc.max_peers)", self.peers.len()),
                    ))
                } else if !in_room.contains(&caller)
                    && in_room.len() >= limits.max_participants as usize
                {
                    Err(Problem::new(
                        Code::RoomFull,
                        format!(
                            "the room has {} of its {} participants",
                            in_room.len(),
                            limits.max_participants
                        ),
                    ))
                } else if connecting >= self.limits.max_connecting_per_caller as usize {
                    Err(Problem::new(
                        Code::TooManyConnecting,
                        format!(
                            "you have {connecting} sessions that have not connected yet \
                             (rtc.max_connecting_per_caller); each is dropped {} s after its \
                             offer if its ICE does not complete",
                            self.limits.connect_timeout.as_secs()
                        ),
                    ))
                } else {
                    let id = PeerId(self.next_id);
                    self.next_id += 1;
                    let now = Instant::now();
                    match Peer::accept(id, room, joiner, &offer, candidate, now, signal) {
                        Ok((mut peer, answer)) => {
                            // It receives every track already in the call.
                            for other in self.rooms.get(&room).into_iter().flatten() {
                                if let Some(o) = self.peers.get(other) {
                                    for t in &o.tracks {
                                        let kind = if t.info.kind == "audio" {
                                            MediaKind::Audio
                                        } else {
                                            MediaKind::Video
                                        };
                                        peer.forward_from((o.id, t.mid), kind);
                                    }
                                }
                            }
                            // Its connect deadline: dropped then unless connected.
                            self.timers
                                .push(Reverse((now + self.limits.connect_timeout, id)));
                            self.peers.insert(id, peer);
                            self.rooms.entry(room).or_default().push(id);
                            self.stats.peers.fetch_add(1, Ordering::Relaxed);
                            self.poll(id);
                            self.negotiate(id);
                            self.settle();
                            self.tell_participants(room);
                            Ok((id, answer))
                        }
                        Err(m) => Err(Problem::new(Code::InvalidSdp, m)),
                    }
                };
                let _ = reply.send(r);
            }
            Command::Leave { room, peer, reply } => {
                let here = self.peers.get(&peer).is_some_and(|p| p.room == room);
                if here {
                    self.remove(peer, "left");
                }
                let _ = reply.send(here);
            }
            Command::Answer { peer, sdp, reply } => {
                let live: Vec<PeerId> = self.peers.keys().copied().collect();
                let r = match self.peers.get_mut(&peer) {
                    None => Err(Problem::new(Code::NotFound, "the peer has left")),
                    Some(p) => p
                        .answered(&sdp, |id| live.contains(&id))
                        .map_err(|m| Problem::new(Code::InvalidSdp, m)),
                };
                if let Ok(opened) = &r {
                    // A new receiver starts at a keyframe.
                    let now = Instant::now();
                    for (sender, mid) in opened.clone() {
                        if let Some(s) = self.peers.get_mut(&sender) {
                            s.request_keyframe(mid, now);
                            self.poll(sender);
                        }
                    }
                    self.poll(peer);
                    self.negotiate(peer);
                    self.settle();
                }
                let _ = reply.send(r.map(|_| ()));
            }
            Command::MediaState { peer, audio, video } => {
                if let Some(p) = self.peers.get_mut(&peer) {
                    p.audio_on = audio;
                    p.video_on = video;
                    let room = p.room;
                    self.tell_participants(room);
                }
            }
            Command::Participants { room, reply } => {
                let list: Vec<_> = self
                    .rooms
                    .get(&room)
                    .into_iter()
                    .flatten()
                    .filter_map(|id| self.peers.get(id))
                    .map(Peer::participant)
                    .collect();
                let _ = reply.send(list);
            }
            Command::Subscribe { room, tx } => {
                for id in self.rooms.get(&room).into_iter().flatten() {
                    let Some(p) = self.peers.get(id) else {
                        continue;
                    };
                    for t in &p.tracks {
                        let _ = tx.try_send(RoomMedia::Track(t.info.clone()));
                    }
                }
                self.subscribers.entry(room).or_default().push(tx);
                self.request_keyframes(room);
            }
            Command::RequestKeyframes { room } => self.request_keyframes(room),
            Command::RequestKeyframe { peer, mid } => {
                if let Some(p) = self.peers.get_mut(&peer) {
                    p.request_keyframe(str0m::media::Mid::from(mid.as_str()), Instant::now());
                    self.drive(peer);
                }
            }
            Command::CloseRoom { room } => {
                for id in self.rooms.get(&room).cloned().unwrap_or_default() {
                    self.remove(id, "room_closed");
                }
                self.subscribers.remove(&room);
            }
        }
    }
}
