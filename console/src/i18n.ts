// Chinese by default, English on request; the choice is kept in the browser.

import { ref } from 'vue';
import type { Locale } from './lib/format';

const LOCALE_KEY = 'linggong.locale';
export const locale = ref<Locale>(localStorage.getItem(LOCALE_KEY) === 'en' ? 'en' : 'zh');

export function setLocale(l: Locale): void {
  locale.value = l;
  localStorage.setItem(LOCALE_KEY, l);
  document.documentElement.lang = l === 'zh' ? 'zh-CN' : 'en';
}

type Entry = [zh: string, en: string];

const messages: Record<string, Entry> = {
  'app.title': ['零工市场工作台', 'Gig market console'],
  'nav.review': ['审核', 'Review'],
  'nav.complaints': ['投诉', 'Complaints'],
  'nav.post': ['发布', 'Post'],
  'nav.workers': ['查询', 'Workers'],
  'nav.dashboard': ['大屏', 'Dashboard'],
  'nav.ledger': ['台账', 'Ledger'],
  'nav.directory': ['名录', 'Directory'],
  'nav.skip': ['跳到正文', 'Skip to content'],
  'lang.switch': ['English', '中文'],
  'signin.title': ['登录', 'Sign in'],
  'signin.token': ['个人令牌', 'Personal token'],
  'signin.hint': [
    '使用管理员为您签发的个人令牌登录；您的每项操作都以您的身份执行并记录。',
    'Sign in with the personal token issued to you; every action is done and recorded as you.',
  ],
  'signin.submit': ['登录', 'Sign in'],
  'signin.out': ['退出', 'Sign out'],
  'signin.refused': ['令牌无效或已停用', 'The token was refused'],
  'common.county': ['区县', 'County'],
  'common.allCounties': ['全部区县', 'All counties'],
  'common.city': ['全市', 'City'],
  'common.refresh': ['刷新', 'Refresh'],
  'common.loading': ['加载中…', 'Loading…'],
  'common.none': ['暂无', 'None'],
  'common.error': ['出错', 'Error'],
  'common.done': ['已完成', 'Done'],
  'common.id': ['编号', 'ID'],
  'common.name': ['名称', 'Name'],
  'common.state': ['状态', 'State'],
  'common.reason': ['原因', 'Reason'],
  'common.note': ['说明', 'Note'],
  'common.submit': ['提交', 'Submit'],
  'common.search': ['查询', 'Search'],
  'common.more': ['更多', 'More'],
  'common.missingRpc': ['接口尚未提供', 'Not in the API yet'],
  'common.missingRpcText': [
    '此功能需要服务端接口 {rpc}，当前版本尚未提供；此处不显示任何虚构数据。',
    'This needs the server RPC {rpc}, which this version does not offer yet; nothing made up is shown here.',
  ],
  'posting.id': ['岗位编号', 'Posting'],
  'posting.employer': ['用人单位', 'Employer'],
  'posting.trade': ['工种', 'Trade'],
  'posting.headcount': ['人数', 'Headcount'],
  'posting.wage': ['日薪（元）', 'Daily wage (yuan)'],
  'posting.start': ['开工时间（北京时间）', 'Start (China Standard Time)'],
  'posting.duration': ['工期（小时）', 'Duration (hours)'],
  'posting.distance': ['最远距离（公里）', 'Farthest distance (km)'],
  'posting.position': ['工作地点', 'Work place'],
  'posting.description': ['说明', 'Description'],
  'posting.source': ['来源', 'Source'],
  'posting.submitted': ['提交时间', 'Submitted'],
  'posting.township': ['乡镇代码', 'Township code'],
  'posting.remaining': ['空缺', 'Open slots'],
  'review.title': ['待审核用工信息', 'Postings waiting for review'],
  'review.approve': ['通过', 'Approve'],
  'review.reject': ['驳回', 'Reject'],
  'review.rejectReason': ['驳回原因', 'Reason for rejection'],
  'review.empty': ['没有待审核的用工信息', 'Nothing is waiting for review'],
  'review.approved': ['已通过：{id}', 'Approved: {id}'],
  'review.rejected': ['已驳回：{id}', 'Rejected: {id}'],
  'review.employerTitle': ['用人单位处置', 'Employer standing'],
  'review.employerDetails': ['单位详情与历史', 'Employer details and history'],
  'review.suspend': ['暂停', 'Suspend'],
  'review.reinstate': ['恢复', 'Reinstate'],
  'review.suspendReason': ['暂停原因', 'Reason for suspension'],
  'review.suspended': ['已暂停 {id}，撤回邀约 {n} 个', 'Suspended {id}; {n} offers withdrawn'],
  'review.reinstated': ['已恢复 {id}', 'Reinstated {id}'],
  'review.employerKind': ['类型', 'Kind'],
  'review.individual': ['个人', 'Individual'],
  'review.company': ['企业', 'Company'],
  'review.creditCode': ['统一社会信用代码', 'Credit code'],
  'review.verified': ['已核验（免审发布）', 'Verified (published without review)'],
  'review.saveEmployer': ['保存用人单位', 'Save employer'],
  'review.employerSaved': ['已保存用人单位 {id}（{created}）', 'Saved employer {id} ({created})'],
  'complaints.title': ['投诉举报', 'Complaints'],
  'complaints.list': ['待处理投诉（按类别、时长）', 'Open complaints by category and age'],
  'complaints.resolve': ['办结投诉', 'Resolve a complaint'],
  'complaints.id': ['投诉编号', 'Complaint id'],
  'complaints.resolution': ['处理结果', 'Resolution'],
  'complaints.resolved': ['已办结投诉 {id}', 'Resolved complaint {id}'],
  'complaints.file': ['登记投诉', 'File a complaint'],
  'complaints.category': ['类别', 'Category'],
  'complaints.detail': ['情况', 'What happened'],
  'complaints.filed': ['已登记投诉 {id}', 'Filed complaint {id}'],
  'post.title': ['发布用工信息', 'Post a job'],
  'post.pick': ['在地图上点击选择工作地点', 'Click the map to pick the work place'],
  'post.picked': ['已选：{pos}（WGS-84）', 'Picked: {pos} (WGS-84)'],
  'post.submitted': ['已提交 {id}，状态：{state}', 'Submitted {id}; state: {state}'],
  'post.match': ['即时匹配', 'Instant match'],
  'post.offers': ['已发出邀约', 'Offers made'],
  'post.noOffers': ['附近暂无合适的零工', 'Nobody nearby fits'],
  'post.deadline': ['答复截止', 'Answer by'],
  'post.worker': ['零工', 'Worker'],
  'post.phone': ['电话', 'Phone'],
  'post.away': ['距离', 'Distance'],
  'post.remainingAfter': ['剩余空缺 {n}', '{n} slots still open'],
  'workers.title': ['零工查询', 'Worker look-up'],
  'workers.byId': ['按编号查询', 'By id'],
  'workers.byPhone': ['按电话查询', 'By phone'],
  'workers.register': ['登记或更新零工', 'Register or update a worker'],
  'workers.id': ['零工编号', 'Worker id'],
  'workers.name': ['姓名', 'Name'],
  'workers.phone': ['电话', 'Phone'],
  'workers.trades': ['工种（可多选）', 'Trades'],
  'workers.level': ['技能等级', 'Skill level'],
  'workers.minWage': ['最低日薪（元）', 'Lowest daily wage (yuan)'],
  'workers.hardship': ['困难类别', 'Hardship'],
  'workers.status': ['状态', 'Status'],
  'workers.waitingSince': ['等待自', 'Waiting since'],
  'workers.reliability': ['完成/爽约/迟退', 'Completed/no-shows/late cancels'],
  'workers.saved': ['已保存 {id}（{created}）', 'Saved {id} ({created})'],
  'workers.new': ['新登记', 'new'],
  'workers.updated': ['已更新', 'updated'],
  'workers.offer': ['已自动匹配邀约：{posting}', 'Offered straight away: {posting}'],
  'workers.position': ['等工地点', 'Waiting place'],
  'dashboard.title': ['区县大屏', 'County dashboard'],
  'dashboard.live': ['实时', 'Live'],
  'dashboard.offline': ['连接中断，正在重连', 'Disconnected, reconnecting'],
  'dashboard.events': ['实时事件', 'Live events'],
  'dashboard.waiting': ['等工人数（按工种）', 'Waiting workers by trade'],
  'dashboard.postings': ['岗位（按状态）', 'Postings by state'],
  'dashboard.matchesToday': ['今日即时匹配', "Today's instant matches"],
  'dashboard.placementsToday': ['今日上岗', "Today's placements"],
  'dashboard.fillRate': ['今日招满率', "Today's fill rate"],
  'dashboard.ttf': ['招满用时中位数', 'Median time to fill'],
  'dashboard.hardship': ['困难群体占比', 'Hardship share'],
  'dashboard.openPostings': ['在招岗位', 'Open postings'],
  'dashboard.offersMade': ['累计邀约', 'Offers made'],
  'ledger.title': ['工作台账', 'Ledger'],
  'ledger.byDay': ['按日', 'By day'],
  'ledger.byMonth': ['按月', 'By month'],
  'ledger.days': ['天数', 'Days'],
  'ledger.download': ['下载表格（CSV）', 'Download table (CSV)'],
  'ledger.workbook': ['下载服务端台账工作簿', 'Download the server workbook'],
  'ledger.day': ['日期', 'Day'],
  'ledger.month': ['月份', 'Month'],
  'ledger.registrations': ['新登记', 'Registrations'],
  'ledger.matches': ['即时匹配', 'Instant matches'],
  'ledger.offers': ['邀约', 'Offers'],
  'ledger.placements': ['上岗', 'Placements'],
  'ledger.filled': ['招满', 'Filled'],
  'ledger.unfilled': ['未招满', 'Unfilled'],
  'ledger.fillRate': ['招满率', 'Fill rate'],
  'ledger.hardshipShare': ['困难群体占比', 'Hardship share'],
  'ledger.noShows': ['爽约', 'No-shows'],
  'directory.title': ['零工市场名录', 'Market directory'],
  'directory.standards': ['验收评估', 'Standards check'],
  'directory.market': ['市场/驿站', 'Market / station'],
  'directory.kind': ['类型', 'Kind'],
  'directory.address': ['地址', 'Address'],
  'directory.hours': ['开放时间', 'Opening hours'],
  'directory.hotline': ['服务热线', 'Hotline'],
  'directory.area': ['室内面积（㎡）', 'Indoor area (m²)'],
  'directory.required': ['标准（㎡）', 'Required (m²)'],
  'directory.verdict': ['结论', 'Verdict'],
  'directory.population': ['常住人口', 'Population'],
  'directory.funds': ['资金测算', 'Funds'],
  'directory.computed': ['测算', 'Computed'],
  'directory.stated': ['方案', 'Plan'],
  'directory.seat': ['县城', 'County seat'],
  'directory.operatorsOnly': ['验收评估仅对运营管理员开放', 'The standards check is for operators'],
  'directory.edit': ['新增或修改名录条目', 'Add or change a directory entry'],
  'directory.channel': ['投诉举报渠道', 'Complaint channel'],
  'directory.pickHint': ['在地图上点击标注位置（默认县城）', 'Click the map to mark the place (default: the county seat)'],
  'directory.saved': ['已保存名录条目 {id}（{created}）', 'Saved directory entry {id} ({created})'],
  'map.noTiles': ['未配置底图：显示县城位置', 'No base map configured: county seats shown'],
};

/** The text of `key` in the current language, with `{name}` placeholders filled in. */
export function t(key: string, params: Record<string, string | number> = {}): string {
  const entry = messages[key];
  let text = entry ? entry[locale.value === 'zh' ? 0 : 1] : key;
  for (const [k, v] of Object.entries(params)) text = text.replace(`{${k}}`, String(v));
  return text;
}

const enumLabels: Record<string, Record<number, Entry>> = {
  PostingState: {
    1: ['待审核', 'Pending review'],
    2: ['已发布', 'Published'],
    3: ['招募中', 'Filling'],
    4: ['已招满', 'Filled'],
    5: ['已过期', 'Expired'],
    6: ['已取消', 'Cancelled'],
    7: ['已驳回', 'Rejected'],
  },
  PostingSource: {
    1: ['区县窗口', 'County desk'],
    2: ['乡镇驿站', 'Township station'],
    3: ['网上提交', 'Online'],
  },
  WorkerStatus: {
    1: ['等工中', 'Waiting'],
    2: ['已邀约', 'Offered'],
    3: ['在岗', 'Engaged'],
    4: ['暂不接活', 'Away'],
  },
  Hardship: {
    1: ['无', 'None'],
    2: ['长期失业', 'Long-term unemployed'],
    3: ['低收入家庭', 'Low-income household'],
    4: ['残疾人', 'Disabled'],
    5: ['大龄', 'Older worker'],
  },
  ComplaintCategory: {
    1: ['拖欠工资', 'Wage arrears'],
    2: ['安全问题', 'Safety'],
    3: ['虚假信息', 'False posting'],
    4: ['歧视', 'Discrimination'],
    5: ['其他', 'Other'],
  },
  ComplaintResolution: {
    1: ['属实', 'Upheld'],
    2: ['不属实', 'Dismissed'],
  },
  MarketKind: {
    1: ['区县零工市场', 'County market'],
    2: ['乡镇零工驿站', 'Township station'],
  },
  Verdict: {
    1: ['达标', 'Pass'],
    2: ['不达标', 'Fail'],
    3: ['未建', 'Missing'],
  },
};

/** The label of an enum value (by the proto enum's name), or its number. */
export function enumLabel(enumName: string, value: number): string {
  const entry = enumLabels[enumName]?.[value];
  return entry ? entry[locale.value === 'zh' ? 0 : 1] : String(value);
}

/** Every labelled value of an enum, in number order. */
export function enumValues(enumName: string): number[] {
  return Object.keys(enumLabels[enumName] ?? {}).map(Number);
}
