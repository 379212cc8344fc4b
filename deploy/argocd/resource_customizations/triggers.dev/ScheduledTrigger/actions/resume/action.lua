-- Start new runs again from the next scheduled time; times that passed while suspended
-- never fire.
obj.spec.suspend = false
return obj
