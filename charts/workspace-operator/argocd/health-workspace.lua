-- Argo CD health check for tenancy.workspace-operator.io/Workspace.
--
-- Install it as resource.customizations.health.tenancy.workspace-operator.io_Workspace in
-- argocd-cm (see the chart's README). It reads the conditions the operator writes much as
-- Flux's kstatus does (Reconciling, Stalled, observedGeneration), with two differences: a
-- Workspace with no status yet is Progressing (kstatus: Current), and one whose namespace
-- was deleted is Missing (kstatus: InProgress).
--
--   being deleted                                   -> Progressing
--   spec.suspend                                    -> Suspended
--   no status yet, or status for an older spec      -> Progressing
--   Stalled=True (phase Failed: a human must act)   -> Degraded
--   namespace deleted behind the operator's back    -> Missing
--   Reconciling=True (Provisioning, or Degraded     -> Progressing
--     while the operator retries)
--   Ready=True                                      -> Healthy
--   Ready=False, neither Reconciling nor Stalled    -> Degraded
--   Ready Unknown or absent                         -> Progressing
--
-- The message is the Ready condition's, which names the blocking concern and what to do.
-- It needs only Lua's base library: Argo CD opens few others to health checks.

local hs = {}

local function condition(conditions, type)
  if conditions == nil then
    return nil
  end
  for _, c in ipairs(conditions) do
    if c.type == type then
      return c
    end
  end
  return nil
end

local function message(c, fallback)
  if c ~= nil and c.message ~= nil and c.message ~= "" then
    return c.message
  end
  return fallback
end

if obj.metadata ~= nil and obj.metadata.deletionTimestamp ~= nil then
  hs.status = "Progressing"
  hs.message = "Workspace is being deleted: the operator removes its namespace before releasing it"
  return hs
end

if obj.spec ~= nil and obj.spec.suspend == true then
  hs.status = "Suspended"
  hs.message = "Workspace is suspended (spec.suspend): workspace-operator leaves it alone until it is set to false"
  return hs
end

local status = obj.status
if status == nil or status.conditions == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for workspace-operator to reconcile the Workspace"
  return hs
end

local conditions = status.conditions
local ready = condition(conditions, "Ready")
local generation = obj.metadata.generation
local observed = status.observedGeneration

if generation ~= nil and (observed == nil or observed < generation) then
  hs.status = "Progressing"
  hs.message = "Waiting for workspace-operator to reconcile generation " .. tostring(generation) ..
    ": " .. message(ready, "no status for it yet")
  return hs
end

local stalled = condition(conditions, "Stalled")
if stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = message(ready, message(stalled, "Workspace is stalled"))
  return hs
end

local namespaceReady = condition(conditions, "NamespaceReady")
if namespaceReady ~= nil and namespaceReady.status == "False" and namespaceReady.reason == "NamespaceTerminating" then
  hs.status = "Missing"
  hs.message = message(namespaceReady, "the workspace namespace is being deleted")
  return hs
end

local reconciling = condition(conditions, "Reconciling")
if reconciling ~= nil and reconciling.status == "True" then
  hs.status = "Progressing"
  hs.message = message(ready, message(reconciling, "Workspace is being reconciled"))
  return hs
end

if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = message(ready, "Workspace is ready")
  return hs
end

if ready ~= nil and ready.status == "False" then
  -- The operator sets Reconciling or Stalled whenever Ready is False; without either it
  -- has given up without saying so.
  hs.status = "Degraded"
  hs.message = message(ready, "Workspace is not ready")
  return hs
end

hs.status = "Progressing"
hs.message = message(ready, "Waiting for workspace-operator to report the Ready condition")
return hs
