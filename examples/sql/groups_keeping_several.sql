-- groups with more than one kept member (say, two pinned images, or a reference image and a pin)
select group_id, count(*) as kept, group_concat(path, char(10)) as paths from match_groups
 where keep_reason is not null group by group_id having count(*) > 1;
