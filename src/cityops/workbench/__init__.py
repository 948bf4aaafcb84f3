"""The workbench (工作台): queues, case pages, bulk dispatch, alarms, warnings, evaluation."""
