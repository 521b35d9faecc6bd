//! `DirectoryService`: the market directory (零工市场名录). Operators add,
//! replace and remove entries; any caller lists the entries of any counties.

use super::{errors, lookups, Api};
use crate::auth::Role;
use crate::convert::api::{self as convert, Rules};
use crate::proto::v1 as pb;
use linggong_engine::{Command, Outcome};
use tonic::{Request, Response, Status};

const EDITORS: &[Role] = &[Role::Operator];
const READERS: &[Role] = &[Role::County, Role::Station, Role::Reviewer, Role::Operator];

#[tonic::async_trait]
impl pb::directory_service_server::DirectoryService for Api {
    async fn upsert_market(
        &self,
        request: Request<pb::UpsertMarketRequest>,
    ) -> Result<Response<pb::UpsertMarketResponse>, Status> {
        self.call("UpsertMarket", request, |caller, req| async move {
            caller.require_role(EDITORS)?;
            let spec = self
                .ctx
                .host
                .read_engine(|e| convert::upsert_market_spec(&Rules::of(e), &req))
                .map_err(|e| errors::invalid_request(&e))?;
            let id = spec.id.clone();
            let applied = self.submit(&caller, &req.request_id, Command::UpsertMarket(spec)).await?;
            match applied.outcome {
                Outcome::MarketUpserted { created } => {
                    let market = self.answer_after_write(|e| e.directory().get(&id).map(convert::market_to_pb)).await?;
                    Ok(pb::UpsertMarketResponse { created, market: Some(market.ok_or_else(|| errors::vanished(&id))?) })
                }
                other => Err(errors::unexpected_outcome(caller.rpc, &other)),
            }
        })
        .await
    }

    async fn remove_market(
        &self,
        request: Request<pb::RemoveMarketRequest>,
    ) -> Result<Response<pb::RemoveMarketResponse>, Status> {
        self.call("RemoveMarket", request, |caller, req| async move {
            caller.require_role(EDITORS)?;
            let command = self
                .ctx
                .host
                .read_engine(|e| convert::remove_market_command(&Rules::of(e), &req))
                .map_err(|e| errors::invalid_request(&e))?;
            match self.submit(&caller, &req.request_id, command).await?.outcome {
                Outcome::MarketRemoved => Ok(pb::RemoveMarketResponse {}),
                other => Err(errors::unexpected_outcome(caller.rpc, &other)),
            }
        })
        .await
    }

    async fn list_markets(
        &self,
        request: Request<pb::ListMarketsRequest>,
    ) -> Result<Response<pb::ListMarketsResponse>, Status> {
        self.call("ListMarkets", request, |caller, req| async move {
            lookups::list_markets(&self.ctx.host, &caller, READERS, &req).await
        })
        .await
    }
}
