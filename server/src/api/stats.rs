//! `StatsService`: one county's market statistics. Callers: county systems
//! (their counties), reviewers, operators.

use super::{errors, Api};
use crate::auth::Role;
use crate::convert::api::{self as convert, Rules};
use crate::proto::v1 as pb;
use tonic::{Request, Response, Status};

const READERS: &[Role] = &[Role::County, Role::Reviewer, Role::Operator];

#[tonic::async_trait]
impl pb::stats_service_server::StatsService for Api {
    async fn county_stats(
        &self,
        request: Request<pb::CountyStatsRequest>,
    ) -> Result<Response<pb::CountyStatsResponse>, Status> {
        self.call("CountyStats", request, |caller, req| async move {
            caller.require_role(READERS)?;
            let county = self
                .ctx
                .host
                .read_engine(|e| convert::checked_county(&Rules::of(e), "county_code", req.county_code))
                .map_err(|e| errors::invalid_request(&e))?;
            caller.require_county(county)?;
            // Copy the counters under the lock; build the message after releasing it.
            let stats = self.ctx.host.read_engine(|e| e.county_stats(county));
            let stats = stats.ok_or_else(|| errors::not_found(format!("unknown county {county}")))?;
            Ok(convert::county_stats_to_pb(&stats))
        })
        .await
    }
}
