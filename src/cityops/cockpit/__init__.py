"""The digital cockpit (数字驾驶舱): the district's vital signs and layers for the wall screen,
scoped to any town, village or grid."""
