//! `StatsService`: one county's market statistics and daily ledger (callers:
//! county systems for their counties, reviewers, operators) and the standards
//! acceptance check with the city funds (operators).

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
            let stats = self.read_answer(|e| e.county_stats(county)).await?;
            let stats = stats.ok_or_else(|| errors::not_found(format!("unknown county {county}")))?;
            Ok(convert::county_stats_to_pb(&stats))
        })
        .await
    }

    async fn county_ledger(
        &self,
        request: Request<pb::CountyLedgerRequest>,
    ) -> Result<Response<pb::CountyLedgerResponse>, Status> {
        self.call("CountyLedger", request, |caller, req| async move {
            caller.require_role(READERS)?;
            let (county, day) = self
                .ctx
                .host
                .read_engine(|e| convert::county_ledger_request(&Rules::of(e), &req))
                .map_err(|e| errors::invalid_request(&e))?;
            caller.require_county(county)?;
            let report = self.read_answer(|e| e.ledger_report(day, county)).await?;
            let report = report.ok_or_else(|| errors::not_found(format!("unknown county {county}")))?;
            Ok(convert::ledger_to_pb(&report))
        })
        .await
    }

    async fn standards_report(
        &self,
        request: Request<pb::StandardsReportRequest>,
    ) -> Result<Response<pb::StandardsReportResponse>, Status> {
        self.call("StandardsReport", request, |caller, _req| async move {
            caller.require_role(&[Role::Operator])?;
            let report = self.read_answer(|e| e.standards_report()).await?;
            Ok(convert::standards_to_pb(&report))
        })
        .await
    }
}
