-- Argo CD health check for retraining.hitl.dev/RetrainingPolicy.
-- Argo CD sets the global `obj` (the live resource) and expects {status=..., message=...}.
-- Precedence (docs/argocd.md has the table): not yet observed > a problem (Degraded=True,
-- phase Failed, Drifted=True, PollsStarved=True, events not flowing) > Suspended (spec.suspend,
-- a run awaiting approval, too little validation data) > in flight or waiting (a run, quota,
-- events connecting) > Collecting/Serving. A problem is never hidden: its message also names
-- the other problems and what else holds (suspended, awaiting approval).
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

local function is(c, value)
  return c ~= nil and c.status == value
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
local run = status.currentRun
local ready = condition(status, "Ready")
local progressing = condition(status, "Progressing")
local degraded = condition(status, "Degraded")
local drifted = condition(status, "Drifted")
local starved = condition(status, "PollsStarved")
local events = condition(status, "EventsFlowing")
local quota = condition(status, "QuotaExceeded")

local awaiting = run ~= nil and run.stage == "AwaitingApproval"
local no_validation_data = is(progressing, "False")
    and progressing.reason == "WaitingForValidationData"
-- EventsFlowing=False while suspended, connecting or catching up is expected; any other
-- reason (QueueUnreachable, QueueRejected, one this script does not know) is a problem: the
-- policy falls back to polling every pollInterval.
local events_waiting = is(events, "False")
    and (events.reason == "Connecting" or events.reason == "Backlogged")
local events_broken = is(events, "False") and not events_waiting
    and events.reason ~= "Suspended"

-- Problems, worst first: the first one gives the message, the others are named after it.
local problems = {}
if is(degraded, "True") then
  table.insert(problems, {"Degraded", message_of(degraded, "Degraded")})
end
-- The operator sets Degraded=True with phase Failed; an older status may carry only the phase.
if phase == "Failed" and not is(degraded, "True") then
  table.insert(problems, {"Failed", message_of(ready, "The policy failed")})
end
if is(drifted, "True") then
  table.insert(problems, {"Drifted", message_of(drifted, "The endpoint changed out of band")})
end
if is(starved, "True") then
  table.insert(problems, {"PollsStarved", message_of(starved, "Polls come late")})
end
if events_broken then
  table.insert(problems, {"EventsFlowing", message_of(events, "A2I events are not consumed")})
end

if #problems > 0 then
  local also = {}
  for i = 2, #problems do
    table.insert(also, problems[i][1])
  end
  if phase == "Suspended" then
    table.insert(also, "suspended")
  end
  if awaiting then
    table.insert(also, "awaiting approval of run " .. tostring(run.id))
  end
  if no_validation_data then
    table.insert(also, "waiting for validation data")
  end
  hs.status = "Degraded"
  hs.message = problems[1][2]
  if #also > 0 then
    hs.message = hs.message .. " (also: " .. table.concat(also, ", ") .. ")"
  end
  return hs
end

-- Suspended: nothing moves until someone (or something outside the cluster) acts.
if phase == "Suspended" then
  hs.status = "Suspended"
  hs.message = "spec.suspend is true: no new runs start"
  return hs
end

-- A run waiting for a person to approve its Model Package (spec.registry.approval Manual).
if awaiting then
  hs.status = "Suspended"
  hs.message = message_of(progressing, "Awaiting approval of run " .. tostring(run.id))
  return hs
end

-- No run starts until more reviews arrive or the validation settings change.
if no_validation_data then
  hs.status = "Suspended"
  hs.message = message_of(progressing, "Waiting for validation data")
  return hs
end

if phase == "Training" or phase == "Evaluating" or phase == "Deploying" then
  hs.status = "Progressing"
  local what = phase
  if run ~= nil and run.trainingJobName ~= nil then
    what = phase .. " (training job " .. run.trainingJobName .. ")"
  end
  hs.message = message_of(progressing, what)
  return hs
end

-- A run is due but waits for its tenant's quota (Scoped mode): it starts when quota frees.
if is(quota, "True") then
  hs.status = "Progressing"
  hs.message = message_of(quota, "A run waits for its tenant's quota")
  return hs
end

-- The event consumer is connecting or catching up; the listing poll covers meanwhile.
if events_waiting then
  hs.status = "Progressing"
  hs.message = message_of(events, "A2I events: " .. events.reason)
  return hs
end

if phase == "Collecting" then
  -- Waiting for reviews is the steady state: healthy once the operator reports Ready and
  -- nothing is in flight (a run being prepared is still Progressing).
  if run == nil and is(ready, "True") then
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
