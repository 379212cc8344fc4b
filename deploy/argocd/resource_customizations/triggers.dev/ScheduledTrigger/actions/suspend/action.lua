-- Stop new runs (running Jobs continue). Git still says otherwise: Argo CD shows the trigger
-- OutOfSync until spec.suspend is changed there too, and a sync with self-heal undoes it.
obj.spec.suspend = true
return obj
