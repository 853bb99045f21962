-- images that are in no group of the latest search
select path from images where id not in (select image_id from match_groups);
