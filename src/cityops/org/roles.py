from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    admin = "admin"
    district_commander = "district_commander"  # 指挥长 (district or, with a town scope, town)
    leader = "leader"  # 领导 (read-only)
    shift_leader = "shift_leader"  # 值班长
    intake_operator = "intake_operator"  # 受理员
    dispatcher = "dispatcher"  # 派遣员
    handler = "handler"  # 处置人员 (department or town office)
    inspector = "inspector"  # 监督员
    grid_worker = "grid_worker"  # 网格员
    citizen = "citizen"  # 群众
    device = "device"  # 设备 / 外部系统


ROLE_LABELS_ZH = {
    Role.admin: "系统管理员",
    Role.district_commander: "指挥长",
    Role.leader: "领导",
    Role.shift_leader: "值班长",
    Role.intake_operator: "受理员",
    Role.dispatcher: "派遣员",
    Role.handler: "处置人员",
    Role.inspector: "监督员",
    Role.grid_worker: "网格员",
    Role.citizen: "群众",
    Role.device: "设备",
}
