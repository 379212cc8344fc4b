-- Start one extra run now: the operator starts one run per new value of the annotation
-- triggers.dev/run-now and names its Job after the value. The value is "argocd-" and the
-- Unix time in seconds, so each click is a new request; two clicks within one second are
-- one run.
if obj.metadata.annotations == nil then
  obj.metadata.annotations = {}
end
obj.metadata.annotations["triggers.dev/run-now"] = "argocd-" .. os.time()
return obj
