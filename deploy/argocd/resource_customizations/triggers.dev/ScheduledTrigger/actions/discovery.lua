-- The actions Argo CD offers on a ScheduledTrigger: suspend or resume (whichever changes
-- something) and run now (always: a manual run starts also while suspended).
local actions = {}
local suspended = obj.spec ~= nil and obj.spec.suspend == true
actions["suspend"] = {["disabled"] = suspended, ["iconClass"] = "fa fa-fw fa-pause"}
actions["resume"] = {["disabled"] = not suspended, ["iconClass"] = "fa fa-fw fa-play"}
actions["run-now"] = {["disabled"] = false, ["iconClass"] = "fa fa-fw fa-play-circle"}
return actions
