//! `GET /v1/admin/nodes`: the cluster's nodes as each last reported (a
//! server alone: itself).

use axum::Json;
use axum::extract::State;
use tapedeck_core::Code;
use tapedeck_core::cluster::NodeInfo;

use crate::engine::principal::Principal;
use crate::http::error::ApiError;
use crate::http::state::AppState;

/// Every node: addresses, version, start, last heartbeat, CPU budget,
/// reserved and used, live sessions, jobs held, whether it drains and
/// whether it is alive. Admins only.
pub async fn nodes(
    State(s): State<AppState>,
    p: Principal,
) -> Result<Json<serde_json::Value>, ApiError> {
    if !p.admin {
        return Err(ApiError::new(
            Code::NotAdmin,
            "only an admin may list the cluster's nodes",
        ));
    }
    let nodes: Vec<NodeInfo> = s.node.all(&s.supervisor).await.map_err(ApiError::from)?;
    Ok(Json(serde_json::json!({
        "clustered": s.node.clustered(),
        "this_node": s.node.id,
        "nodes": nodes,
    })))
}
