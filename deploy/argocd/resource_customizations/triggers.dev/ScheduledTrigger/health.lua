-- Argo CD health of a triggers.dev ScheduledTrigger, read from what the operator writes.
-- Order matters: a status older than the spec says nothing yet; an invalid spec outranks
-- suspension; a suspended trigger is Suspended even when its last run failed.
local hs = {}

local function ready_condition(status)
  if status.conditions == nil then
    return nil
  end
  for _, condition in ipairs(status.conditions) do
    if condition.type == "Ready" then
      return condition
    end
  end
  return nil
end

local generation = obj.metadata.generation
local status = obj.status
if status == nil or status.observedGeneration == nil
    or (generation ~= nil and status.observedGeneration < generation) then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe the trigger"
  return hs
end

local ready = ready_condition(status)
if ready ~= nil and ready.status == "False" then
  hs.status = "Degraded"
  hs.message = (ready.reason or "NotReady") .. ": " .. (ready.message or "")
  return hs
end

if obj.spec ~= nil and obj.spec.suspend == true then
  hs.status = "Suspended"
  hs.message = "spec.suspend is true: no new runs start"
  return hs
end

if status.lastRun ~= nil and status.lastRun.result == "Failed" then
  hs.status = "Degraded"
  hs.message = "last run failed: " .. (status.lastRun.name or "")
  return hs
end

if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = ready.message or ready.reason or ""
  return hs
end

hs.status = "Progressing"
hs.message = "Waiting for the Ready condition"
return hs
