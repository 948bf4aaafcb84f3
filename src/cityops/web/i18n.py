"""UI strings: zh-CN first, English available (``?lang=en``)."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import Request

STRINGS: dict[str, dict[str, str]] = {
    "app_title": {
        "zh": "开州区数字化城市运行和治理中心",
        "en": "Kaizhou City Operations and Governance Center",
    },
    "map_title": {"zh": "辖区地图", "en": "District map"},
    "synthetic_note": {
        "zh": "演示数据：边界为合成示意，非测绘成果",
        "en": "Demo data: boundaries are synthetic, not surveyed",
    },
    "back": {"zh": "返回上级", "en": "Up one level"},
    "click_hint": {"zh": "点击区域下钻", "en": "Click a region to drill down"},
    "regions": {"zh": "下级区域", "en": "Sub-regions"},
    "area": {"zh": "面积", "en": "Area"},
    "level_district": {"zh": "区", "en": "District"},
    "level_town": {"zh": "镇街", "en": "Town"},
    "level_village": {"zh": "村（社区）", "en": "Village"},
    "level_grid": {"zh": "网格", "en": "Grid"},
    "api_docs": {"zh": "接口文档", "en": "API docs"},
    "loading": {"zh": "加载中…", "en": "Loading…"},
    "load_failed": {
        "zh": "地图数据加载失败，请稍后重试",
        "en": "Could not load the map; please retry",
    },
    "assets_missing": {
        "zh": "前端资源未构建：请运行 make demo",
        "en": "Front-end assets are missing: run make demo",
    },
    "km2": {"zh": "km²", "en": "km²"},
    "count": {"zh": "个", "en": ""},
    "language": {"zh": "English", "en": "中文"},
    "login_title": {"zh": "登录", "en": "Sign in"},
    "username": {"zh": "用户名或手机号", "en": "Username or mobile"},
    "password": {"zh": "密码", "en": "Password"},
    "sign_in": {"zh": "登录", "en": "Sign in"},
    "sign_out": {"zh": "退出", "en": "Sign out"},
    "sso": {
        "zh": "使用政务统一身份认证登录",
        "en": "Sign in with the government identity platform",
    },
    "login_failed": {"zh": "用户名或密码错误", "en": "Wrong username or password"},
    "login_disabled": {
        "zh": "账号已停用，请联系管理员",
        "en": "This account is disabled; contact an administrator",
    },
    "login_missing": {"zh": "请输入用户名和密码", "en": "Enter your username and password"},
    "login_expired": {
        "zh": "页面已过期，请重新登录",
        "en": "The page expired; please sign in again",
    },
    "login_throttled": {
        "zh": "尝试次数过多，请 {seconds} 秒后再试",
        "en": "Too many attempts; try again in {seconds} s",
    },
    "demo_accounts": {
        "zh": "演示账号（密码见启动输出或 var/demo-accounts.txt）",
        "en": "Demo accounts (passwords: see the start-up output or var/demo-accounts.txt)",
    },
    # Digital cockpit (数字驾驶舱, /cockpit): keys start with ck_ and reach its script.
    "ck_title": {
        "zh": "开州区城市运行和治理中心 · 数字驾驶舱",
        "en": "Kaizhou City Operations Center · Digital Cockpit",
    },
    "ck_page_title": {"zh": "数字驾驶舱", "en": "Digital cockpit"},
    "ck_forbidden": {
        "zh": "您没有查看数字驾驶舱的权限",
        "en": "You are not allowed to view the digital cockpit",
    },
    "ck_region_missing": {"zh": "该区域不存在或不在您的辖区", "en": "No such region in your area"},
    "ck_back_home": {"zh": "返回本辖区驾驶舱", "en": "Back to your area's cockpit"},
    "ck_back_map": {"zh": "辖区地图", "en": "District map"},
    "ck_breadcrumb": {"zh": "层级导航", "en": "Region levels"},
    "ck_clock": {"zh": "当前时间", "en": "Current time"},
    "ck_map": {"zh": "辖区态势", "en": "Situation map"},
    "ck_map_label": {
        "zh": "辖区态势地图：点击区域下钻",
        "en": "Situation map: click a region to drill down",
    },
    "ck_drill_hint": {
        "zh": "点击区域下钻，点击导航返回",
        "en": "Click a region to drill down; use the levels above to go back",
    },
    "ck_layers": {"zh": "图层", "en": "Layers"},
    "ck_drill": {"zh": "下钻到", "en": "Drill down to"},
    "ck_drill_choose": {"zh": "选择下级区域…", "en": "Choose a region…"},
    "ck_layer_cases": {"zh": "案件", "en": "Cases"},
    "ck_layer_alarms": {"zh": "告警", "en": "Alarms"},
    "ck_layer_risk_points": {"zh": "风险点位", "en": "Risk points"},
    "ck_layer_devices": {"zh": "感知设备", "en": "Devices"},
    "ck_layer_workers": {"zh": "在岗网格员", "en": "Grid workers on duty"},
    "ck_layer_shelters": {"zh": "安置点", "en": "Shelters"},
    "ck_truncated": {"zh": "{layer}仅显示最新 {n} 个", "en": "{layer}: newest {n} shown"},
    "ck_workers_note": {
        "zh": "网格员位置为所在网格中心（暂无定位轨迹）",
        "en": "Grid workers are shown at their grid's centre (no GPS track yet)",
    },
    "ck_kpi_cases": {"zh": "案件办理", "en": "Case handling"},
    "ck_intake": {"zh": "今日受理", "en": "Reported today"},
    "ck_closed": {"zh": "今日结案", "en": "Closed today"},
    "ck_open": {"zh": "在办案件", "en": "Open cases"},
    "ck_overdue": {"zh": "超期在办", "en": "Overdue, open"},
    "ck_closure_rate": {"zh": "结案率（近30天）", "en": "Closure rate (30 days)"},
    "ck_on_time_rate": {"zh": "按期结案率（近30天）", "en": "On-time closure (30 days)"},
    "ck_by_source": {"zh": "案件来源（近30天）", "en": "Cases by source (30 days)"},
    "ck_by_category": {"zh": "高发类别 TOP10（近30天）", "en": "Top 10 categories (30 days)"},
    "ck_trend": {"zh": "近30天受理与结案", "en": "Reported and closed, last 30 days"},
    "ck_series_intake": {"zh": "受理", "en": "Reported"},
    "ck_series_closed": {"zh": "结案", "en": "Closed"},
    "ck_no_data": {"zh": "暂无数据", "en": "No data yet"},
    "ck_uncategorised": {"zh": "未分类", "en": "Unclassified"},
    "ck_other": {"zh": "其他", "en": "Other"},
    "ck_sensing": {"zh": "告警与设备", "en": "Alarms and devices"},
    "ck_alarms_open": {"zh": "未关闭告警", "en": "Open alarms"},
    "ck_sev_critical": {"zh": "紧急", "en": "Critical"},
    "ck_sev_major": {"zh": "重要", "en": "Major"},
    "ck_sev_minor": {"zh": "次要", "en": "Minor"},
    "ck_sev_warning": {"zh": "提示", "en": "Warning"},
    "ck_unacked": {"zh": "未确认 {n}", "en": "{n} unacknowledged"},
    "ck_shelved": {"zh": "已搁置 {n}", "en": "{n} shelved"},
    "ck_devices": {"zh": "感知设备", "en": "Devices"},
    "ck_online": {"zh": "在线", "en": "Online"},
    "ck_offline": {"zh": "离线", "en": "Offline"},
    "ck_warnings": {"zh": "生效预警与避险转移", "en": "Active warnings and evacuation"},
    "ck_no_warnings": {"zh": "当前无生效预警", "en": "No active warnings"},
    "ck_warning_level": {"zh": "{level}预警", "en": "{level} warning"},
    "ck_at_home": {"zh": "仍在家 {n} 人", "en": "{n} still at home"},
    "ck_evac_detail": {
        "zh": "已转移 {evacuated} · 已安置 {sheltered} · 共 {total} 人",
        "en": "{evacuated} evacuated · {sheltered} sheltered · {total} in all",
    },
    "ck_evac_progress": {
        "zh": "已转移安置 {done}/{total} 人",
        "en": "{done} of {total} persons moved",
    },
    "ck_no_evacuation": {"zh": "尚未启动避险转移", "en": "Evacuation not started"},
    "ck_level_red": {"zh": "红色", "en": "Red"},
    "ck_level_orange": {"zh": "橙色", "en": "Orange"},
    "ck_level_yellow": {"zh": "黄色", "en": "Yellow"},
    "ck_level_blue": {"zh": "蓝色", "en": "Blue"},
    "ck_level_none": {"zh": "无预警", "en": "No level"},
    "ck_wstate_proposed": {"zh": "待确认", "en": "Proposed"},
    "ck_wstate_confirmed": {"zh": "已确认", "en": "Confirmed"},
    "ck_wstate_issued": {"zh": "已发布", "en": "Issued"},
    "ck_state_reported": {"zh": "待立案", "en": "Reported"},
    "ck_state_registered": {"zh": "待派遣", "en": "Registered"},
    "ck_state_dispatched": {"zh": "待签收", "en": "Dispatched"},
    "ck_state_handling": {"zh": "处置中", "en": "Handling"},
    "ck_state_handled": {"zh": "待核查", "en": "Handled"},
    "ck_overdue_cases": {"zh": "超期", "en": "Overdue"},
    "ck_urgent": {"zh": "紧急", "en": "Urgent"},
    "ck_src_citizen": {"zh": "群众上报", "en": "Citizens"},
    "ck_src_grid_worker": {"zh": "网格员巡查", "en": "Grid workers"},
    "ck_src_inspector": {"zh": "监督员巡查", "en": "Inspectors"},
    "ck_src_hotline": {"zh": "12345热线", "en": "12345 hotline"},
    "ck_src_sensor_alarm": {"zh": "感知告警", "en": "Sensor alarms"},
    "ck_src_department": {"zh": "部门移交", "en": "Departments"},
    "ck_src_open311": {"zh": "Open311 接口", "en": "Open311"},
    "ck_src_video": {"zh": "视频发现", "en": "Video"},
    "ck_hazard_landslide": {"zh": "滑坡", "en": "Landslide"},
    "ck_hazard_collapse": {"zh": "崩塌", "en": "Rockfall"},
    "ck_hazard_debris_flow": {"zh": "泥石流", "en": "Debris flow"},
    "ck_hazard_subsidence": {"zh": "地面塌陷", "en": "Subsidence"},
    "ck_hazard_flood": {"zh": "山洪易涝点", "en": "Flash flood"},
    "ck_hazard_unstable_slope": {"zh": "不稳定斜坡", "en": "Unstable slope"},
    "ck_threatened": {"zh": "受威胁 {n} 人", "en": "{n} persons threatened"},
    "ck_occupancy": {"zh": "已安置 {n}/{capacity} 人", "en": "{n} of {capacity} places taken"},
    "ck_on_duty": {"zh": "在岗", "en": "On duty"},
    "ck_ticker": {"zh": "实时动态", "en": "Live events"},
    "ck_ticker_empty": {"zh": "等待实时消息…", "en": "Waiting for live events…"},
    "ck_live_stream": {"zh": "实时推送", "en": "Live"},
    "ck_live_polling": {"zh": "轮询更新", "en": "Polling"},
    "ck_live_off": {"zh": "连接中断，重试中", "en": "Offline, retrying"},
    "ck_load_failed": {
        "zh": "数据加载失败，稍后自动重试",
        "en": "Could not load the data; retrying",
    },
    "ck_assets_missing": {
        "zh": "前端资源未构建：请运行 make demo",
        "en": "Front-end assets are missing: run make demo",
    },
    "ck_topic_cases": {"zh": "案件", "en": "Case"},
    "ck_topic_alarms": {"zh": "告警", "en": "Alarm"},
    "ck_topic_warnings": {"zh": "预警", "en": "Warning"},
    "ck_topic_evacuations": {"zh": "转移", "en": "Evacuation"},
    "ck_topic_risk_points": {"zh": "风险点", "en": "Risk point"},
    "ck_act_raised": {"zh": "触发", "en": "raised"},
    "ck_act_reraised": {"zh": "再次触发", "en": "raised again"},
    "ck_act_repeated": {"zh": "持续", "en": "repeated"},
    "ck_act_normal": {"zh": "数值恢复", "en": "back to normal"},
    "ck_act_cleared": {"zh": "已解除", "en": "cleared"},
    "ck_act_closed": {"zh": "已关闭", "en": "closed"},
    "ck_act_acked": {"zh": "已确认", "en": "acknowledged"},
    "ck_act_comment": {"zh": "备注", "en": "comment"},
    "ck_act_assigned": {"zh": "已指派", "en": "assigned"},
    "ck_act_shelved": {"zh": "已搁置", "en": "shelved"},
    "ck_act_unshelved": {"zh": "取消搁置", "en": "unshelved"},
    "ck_act_proposed": {"zh": "提出预警", "en": "proposed"},
    "ck_act_seconded": {"zh": "再次研判", "en": "seconded"},
    "ck_act_confirmed": {"zh": "确认预警", "en": "confirmed"},
    "ck_act_rejected": {"zh": "驳回预警", "en": "rejected"},
    "ck_act_issued": {"zh": "发布预警", "en": "issued"},
    "ck_act_updated": {"zh": "更新预警", "en": "updated"},
    "ck_act_lifted": {"zh": "解除预警", "en": "lifted"},
    "ck_act_opened": {"zh": "启动转移", "en": "evacuation opened"},
    "ck_act_status": {"zh": "住户状态", "en": "household status"},
    "ck_act_level": {"zh": "预警等级变化", "en": "level changed"},
    "ck_act_report": {"zh": "上报", "en": "reported"},
    "ck_act_register": {"zh": "立案", "en": "registered"},
    "ck_act_dispatch": {"zh": "派遣", "en": "dispatched"},
    "ck_act_accept": {"zh": "签收", "en": "accepted"},
    "ck_act_report_done": {"zh": "处置完成", "en": "handled"},
    "ck_act_verify_ok": {"zh": "核查结案", "en": "closed"},
    "ck_act_verify_fail": {"zh": "核查不通过", "en": "verification failed"},
    "ck_act_escalate": {"zh": "上报提级", "en": "escalated"},
    "ck_act_urge": {"zh": "超期催办", "en": "overdue: urged"},
    "ck_act_reject": {"zh": "不予立案", "en": "rejected"},
    "ck_act_merge": {"zh": "合并", "en": "merged"},
    "ck_act_delegate": {"zh": "下派", "en": "delegated"},
    "ck_act_self_handle": {"zh": "自处理", "en": "self-handled"},
    "ck_act_return": {"zh": "回退", "en": "returned"},
    "ck_act_park": {"zh": "挂账", "en": "parked"},
    "ck_act_unpark": {"zh": "解除挂账", "en": "unparked"},
    "ck_act_void": {"zh": "作废", "en": "voided"},
    "ck_act_request_extension": {"zh": "申请延期", "en": "extension requested"},
    "ck_act_decide_extension": {"zh": "延期审批", "en": "extension decided"},
    "ck_act_assist": {"zh": "增派协办", "en": "assisting unit added"},
    "ck_act_rate": {"zh": "群众评价", "en": "rated"},
    "ck_act_warn": {"zh": "即将到期", "en": "due soon"},
    "ck_act_supervise": {"zh": "督办", "en": "supervised"},
    "ck_act_auto_escalate": {"zh": "超期提级", "en": "escalated (overdue)"},
    "ck_act_problem": {"zh": "列为问题案件", "en": "problem case"},
    "ck_evac_pending": {"zh": "待通知", "en": "pending"},
    "ck_evac_notified": {"zh": "已通知", "en": "notified"},
    "ck_evac_evacuated": {"zh": "已转移", "en": "evacuated"},
    "ck_evac_sheltered": {"zh": "已安置", "en": "sheltered"},
    "ck_evac_refused": {"zh": "拒绝转移", "en": "refused"},
    "ck_evac_unreachable": {"zh": "联系不上", "en": "unreachable"},
}

from cityops.web.i18n_mobile import MOBILE_STRINGS  # noqa: E402  (the pocket command room's)
from cityops.web.i18n_workbench import WORKBENCH_STRINGS  # noqa: E402
from cityops.web.i18n_workbench_alerts import WORKBENCH_ALERT_STRINGS  # noqa: E402

STRINGS.update(MOBILE_STRINGS)
STRINGS.update(WORKBENCH_STRINGS)
STRINGS.update(WORKBENCH_ALERT_STRINGS)

LANGUAGES = ("zh", "en")


LANG_COOKIE = "cityops_lang"


def pick_language(request: Request) -> str:
    """zh-CN unless the user chose English (``?lang=en``, remembered in a cookie). The browser's
    Accept-Language is deliberately ignored: a government wall screen must not turn English
    because of how its browser was installed."""
    asked = request.query_params.get("lang") or request.cookies.get(LANG_COOKIE)
    return asked if asked in LANGUAGES else "zh"


def translator(lang: str) -> Callable[[str], str]:
    def t(key: str) -> str:
        entry = STRINGS.get(key)
        return entry.get(lang, entry["zh"]) if entry else key

    return t
