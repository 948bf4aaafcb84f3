"""Deterministic, plausible Chinese names for synthetic villages, grids and people."""

from __future__ import annotations

import numpy as np

# Characters common in village names of north-east Chongqing (place words, not real villages).
_PLACE_FIRST = list(
    "太康和平安乐兴福长青石龙凤双永新白云金桂花红柏竹梅松林盛丰华明光清泉水高坪桥河湾岭山坝塘溪沟垭岩阳春秋荷"
)
_PLACE_SECOND = list("康和平安乐兴福泰顺丰华明光林坪桥湾岭山坝塘溪沟垭岩阳春园源寨院河峰台")
_SURNAMES = list(
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤"
)
_GIVEN = list(
    "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华建国文辉鹏飞玲燕红波宇浩凯晨欣怡佳雪梅兰林峰亮斌琴丹蓉春成志勤淑"
)
_MOBILE_PREFIXES = [
    "133",
    "135",
    "136",
    "137",
    "138",
    "139",
    "150",
    "151",
    "152",
    "157",
    "158",
    "159",
    "177",
    "180",
    "181",
    "183",
    "187",
    "189",
    "199",
]


class NameMaker:
    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self._places: set[str] = set()

    def place(self, suffix: str) -> str:
        """A two-character place name + suffix, unique across the district."""
        while True:
            a = _PLACE_FIRST[self.rng.integers(len(_PLACE_FIRST))]
            b = _PLACE_SECOND[self.rng.integers(len(_PLACE_SECOND))]
            if a != b and a + b not in self._places:
                self._places.add(a + b)
                return a + b + suffix

    def reserve(self, stem: str) -> None:
        self._places.add(stem)

    def person(self) -> str:
        surname = _SURNAMES[self.rng.integers(len(_SURNAMES))]
        given_len = 1 if self.rng.random() < 0.35 else 2
        given = "".join(_GIVEN[self.rng.integers(len(_GIVEN))] for _ in range(given_len))
        return surname + given

    def mobile(self) -> str:
        prefix = _MOBILE_PREFIXES[self.rng.integers(len(_MOBILE_PREFIXES))]
        return prefix + "".join(str(d) for d in self.rng.integers(0, 10, size=8))
