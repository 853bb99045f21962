-- every decision in force, with where its images are now
select decision_id, kind, path, note from decided_images order by decision_id, path;
