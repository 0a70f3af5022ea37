//! Who may see a room, control it and record it.

use tapedeck_core::recording::{RoomLayout, RoomSource};
use tapedeck_core::{Code, Problem};

use crate::engine::principal::Principal;
use crate::engine::services::Services;

/// A room `p` may see (as its host, one who joined it, or an admin), and
/// whether `p` controls it; to anyone else it is `not_found`, like a room
/// that does not exist.
pub async fn room_for(
    repo: &tapedeck_store::repo::Repo,
    p: &Principal,
    id: tapedeck_core::RoomId,
) -> Result<(tapedeck_core::room::Room, bool), Problem> {
    let no_room = || Problem::new(Code::NotFound, "no such room");
    let room = repo.room(id).await?.ok_or_else(no_room)?;
    let controls = p.admin || room.host == p.user;
    if controls || repo.is_member(&room, &p.user).await? {
        Ok((room, controls))
    } else {
        Err(no_room())
    }
}

/// `not_room_host` unless the caller controls the room.
pub fn host_only(controls: bool, what: &str) -> Result<(), Problem> {
    if controls {
        Ok(())
    } else {
        Err(Problem::new(
            Code::NotRoomHost,
            format!("only the room's host may {what}"),
        ))
    }
}

/// Only the room's host (or an admin) records it; the room must be open.
/// `layout: tracks` is WebM (the tracks as they arrived, VP8 and Opus);
/// `layout: grid` is the format asked for.
pub async fn authorize(
    services: &Services,
    p: &Principal,
    src: &RoomSource,
    v: &mut tapedeck_core::request::ValidCreate,
) -> Result<(), Problem> {
    let (room, controls) = room_for(&services.repo, p, src.room).await?;
    host_only(controls, "record the room")?;
    if room.closed_at.is_some() {
        return Err(Problem::new(Code::RoomClosed, "the room is closed"));
    }
    // The tracks as they arrived go in WebM; a grid is encoded in the
    // format asked for.
    if src.layout == RoomLayout::Tracks {
        v.format = tapedeck_core::Format::Webm;
    }
    v.max_duration_s = room.cap_duration(v.max_duration_s);
    Ok(())
}
