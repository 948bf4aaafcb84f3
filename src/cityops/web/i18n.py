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
}

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
