//! Chinese (zh-CN) wording of the service's errors, sent as a
//! `google.rpc.LocalizedMessage` beside the English status message, so a
//! county desk's screen can show what went wrong in the language of its users.

use linggong_engine::{EngineError, OfferState, PostingState, WorkerStatus};
use tonic::Code;

/// The locale of the localized messages.
pub const LOCALE: &str = "zh-CN";

fn posting_state(s: PostingState) -> &'static str {
    match s {
        PostingState::PendingReview => "待审核",
        PostingState::Published => "已发布",
        PostingState::Filling => "招募中",
        PostingState::Filled => "已招满",
        PostingState::Expired => "已过期",
        PostingState::Cancelled => "已取消",
        PostingState::Rejected => "已驳回",
    }
}

fn offer_state(s: OfferState) -> &'static str {
    match s {
        OfferState::Pending => "待答复",
        OfferState::Accepted => "已接受",
        OfferState::Arrived => "已到岗",
        OfferState::Completed => "已完工",
        OfferState::Declined => "已拒绝",
        OfferState::Expired => "已超时",
        OfferState::Withdrawn => "已撤回",
        OfferState::Cancelled => "已取消",
        OfferState::NoShow => "未到岗",
    }
}

fn worker_status(s: WorkerStatus) -> &'static str {
    match s {
        WorkerStatus::Waiting => "待岗",
        WorkerStatus::Offered => "已派单",
        WorkerStatus::Engaged => "在岗",
        WorkerStatus::Away => "暂不接单",
    }
}

/// The Chinese message of an engine refusal.
pub fn engine(e: &EngineError) -> String {
    match e {
        EngineError::InvalidArgument(v) => {
            let fields: Vec<&str> = v.iter().map(|x| x.field.as_str()).collect();
            format!("请求参数有误：字段 {} 不符合要求", fields.join("、"))
        }
        EngineError::UnknownWorker(id) => format!("未找到零工 {id}"),
        EngineError::UnknownEmployer(id) => format!("未找到用工单位 {id}"),
        EngineError::UnknownPosting(id) => format!("未找到用工信息 {id}"),
        EngineError::UnknownOffer(id) => format!("未找到派单 {id}，或该派单已结束"),
        EngineError::UnknownMarket(id) => format!("未找到零工市场 {id}"),
        EngineError::UnknownComplaint(id) => format!("未找到投诉 {id}"),
        EngineError::PostingExists { id, current_version } => {
            format!("用工信息 {id} 已存在，当前版本为 {current_version}")
        }
        EngineError::StaleVersion { id, given, current_version } => {
            format!("用工信息 {id} 的版本 {given} 已过时：当前版本为 {current_version}，更新须使用更高的版本号")
        }
        EngineError::PostingState { id, state, .. } => {
            format!("用工信息 {id} 当前为“{}”状态，不能进行此操作", posting_state(*state))
        }
        EngineError::EmployerSuspended(id) => format!("用工单位 {id} 已被暂停，不能进行此操作"),
        EngineError::OfferState { id, state, .. } => {
            format!("派单 {id} 当前为“{}”状态，不能进行此操作", offer_state(*state))
        }
        EngineError::OfferExpired(id) => format!("派单 {id} 已超过答复期限"),
        EngineError::NotOfferHolder { offer, worker } => format!("派单 {offer} 不属于零工 {worker}"),
        EngineError::WorkerState { id, status, .. } => {
            format!("零工 {id} 当前为“{}”状态，不能进行此操作", worker_status(*status))
        }
        EngineError::ComplaintResolved(id) => format!("投诉 {id} 已处理完毕"),
    }
}

/// A request whose fields failed validation.
pub fn invalid_fields<'a>(fields: impl Iterator<Item = &'a str>) -> String {
    let fields: Vec<&str> = fields.collect();
    if fields.is_empty() {
        return "请求参数有误".to_string();
    }
    format!("请求参数有误，请检查以下字段：{}", fields.join("、"))
}

/// A caller over its token's rate limit.
pub fn rate_limited(retry_after_secs: f64) -> String {
    format!("请求过于频繁，请在 {retry_after_secs:.1} 秒后重试")
}

/// The Chinese message for a status that has no more specific one.
pub fn by_code(code: Code) -> &'static str {
    match code {
        Code::Ok => "成功",
        Code::Cancelled => "请求已取消",
        Code::Unknown => "未知错误",
        Code::InvalidArgument => "请求参数有误",
        Code::DeadlineExceeded => "请求超时，请稍后重试",
        Code::NotFound => "未找到所请求的记录",
        Code::AlreadyExists => "记录已存在",
        Code::PermissionDenied => "无权进行此操作：令牌的角色或辖区不允许",
        Code::ResourceExhausted => "服务繁忙或请求过大，请稍后重试",
        Code::FailedPrecondition => "当前状态不允许此操作",
        Code::Aborted => "操作被中止，请重试",
        Code::OutOfRange => "超出可用范围",
        Code::Unimplemented => "不支持此操作",
        Code::Internal => "服务器内部错误",
        Code::Unavailable => "服务暂时不可用，请稍后重试",
        Code::DataLoss => "数据丢失或损坏",
        Code::Unauthenticated => "未认证：请在 authorization 元数据中提供有效的 Bearer 令牌",
    }
}
