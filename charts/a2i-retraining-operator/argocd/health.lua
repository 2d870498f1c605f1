-- Argo CD health check for retraining.hitl.dev/RetrainingPolicy.
-- Argo CD sets the global `obj` (the live resource) and expects {status=..., message=...}.
-- Precedence: not yet observed > Suspended (spec.suspend, or awaiting approval) > Degraded >
-- Failed > in flight > Serving/Collecting.
local hs = {}

local function condition(status, ctype)
  if status.conditions == nil then
    return nil
  end
  for _, c in ipairs(status.conditions) do
    if c.type == ctype then
      return c
    end
  end
  return nil
end

local function message_of(c, fallback)
  if c ~= nil and c.message ~= nil and c.message ~= "" then
    return c.message
  end
  if c ~= nil and c.reason ~= nil and c.reason ~= "" then
    return c.reason
  end
  return fallback
end

local status = obj.status
local generation = nil
if obj.metadata ~= nil then
  generation = obj.metadata.generation
end

-- The operator has not reported on this spec yet.
if status == nil or status.observedGeneration == nil
    or (generation ~= nil and status.observedGeneration < generation) then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe the latest spec"
  return hs
end

local phase = status.phase
local degraded = condition(status, "Degraded")
local ready = condition(status, "Ready")
local progressing = condition(status, "Progressing")

if phase == "Suspended" then
  hs.status = "Suspended"
  hs.message = message_of(ready, "spec.suspend is true: no new runs start")
  return hs
end

-- A run waiting for a person to approve its Model Package (spec.registry.approval Manual):
-- nothing moves until someone acts, which is what Argo CD's Suspended says.
if status.currentRun ~= nil and status.currentRun.stage == "AwaitingApproval" then
  hs.status = "Suspended"
  hs.message = message_of(progressing, "Awaiting approval of run " .. tostring(status.currentRun.id))
  return hs
end

if degraded ~= nil and degraded.status == "True" then
  hs.status = "Degraded"
  hs.message = message_of(degraded, "Degraded")
  return hs
end

-- A run is due but waits for its tenant's quota (Scoped mode): it starts when quota frees.
local quota = condition(status, "QuotaExceeded")
if quota ~= nil and quota.status == "True" and phase ~= "Failed" then
  hs.status = "Progressing"
  hs.message = message_of(quota, "A run waits for its tenant's quota")
  return hs
end

if phase == "Failed" then
  hs.status = "Degraded"
  hs.message = message_of(ready, "The policy failed")
  return hs
end

if phase == "Training" or phase == "Evaluating" or phase == "Deploying" then
  hs.status = "Progressing"
  local run = status.currentRun
  local what = phase
  if run ~= nil and run.trainingJobName ~= nil then
    what = phase .. " (training job " .. run.trainingJobName .. ")"
  end
  hs.message = message_of(progressing, what)
  return hs
end

if phase == "Collecting" then
  -- Waiting for reviews is the steady state: healthy once the operator reports Ready and
  -- nothing is in flight (a run being prepared is still Progressing).
  if status.currentRun == nil and ready ~= nil and ready.status == "True" then
    hs.status = "Healthy"
    local pending = nil
    if status.ingest ~= nil then
      pending = status.ingest.pendingSamples
    end
    if pending ~= nil then
      hs.message = "Collecting reviews: " .. string.format("%d", pending) .. " samples pending"
    else
      hs.message = message_of(ready, "Collecting reviews")
    end
    return hs
  end
  hs.status = "Progressing"
  hs.message = message_of(progressing, "Collecting reviews")
  return hs
end

if phase == "Serving" then
  hs.status = "Healthy"
  local model = nil
  if status.serving ~= nil then
    model = status.serving.modelName
  end
  if model ~= nil then
    hs.message = "Serving model " .. model
  else
    hs.message = message_of(ready, "Serving")
  end
  return hs
end

-- Observed, but no phase this script knows (an older or newer operator).
hs.status = "Progressing"
if phase ~= nil then
  hs.message = "Unknown phase " .. tostring(phase)
else
  hs.message = "Waiting for the operator to report a phase"
end
return hs
