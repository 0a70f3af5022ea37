//! The room kind as the engine drives it.

use std::sync::Arc;

use futures::future::BoxFuture;
use tapedeck_core::Failure;

use super::{Recovered, RoomRecording, authorize};
use crate::engine::services::Services;
use crate::engine::source::{OpenCtx, Source};

/// The room kind: every track of a call, as it arrived.
pub struct Room;

impl crate::engine::source::Kind for Room {
    fn open(&self, ctx: OpenCtx) -> BoxFuture<'static, Result<Box<dyn Source>, Failure>> {
        Box::pin(async move {
            let tapedeck_core::recording::SourceSpec::Room(r) = ctx.rec.source.clone() else {
                return Err(Failure::internal("a room source without a room"));
            };
            Ok(Box::new(RoomRecording::open(ctx, r).await?) as Box<dyn Source>)
        })
    }

    fn recovered(
        &self,
        services: Arc<Services>,
        rec: &tapedeck_core::recording::Recording,
    ) -> Box<dyn Source> {
        // Track files cut by a crash are finalized where they were cut.
        Box::new(Recovered::new(services, rec))
    }

    fn authorize<'a>(
        &'a self,
        services: &'a Services,
        p: &'a crate::engine::principal::Principal,
        v: &'a mut tapedeck_core::request::ValidCreate,
    ) -> BoxFuture<'a, Result<(), tapedeck_core::Problem>> {
        Box::pin(async move {
            let tapedeck_core::recording::SourceSpec::Room(r) = v.source.clone() else {
                return Err(tapedeck_core::Problem::internal(
                    "a room source without a room",
                ));
            };
            authorize(services, p, &r, v).await
        })
    }
}
