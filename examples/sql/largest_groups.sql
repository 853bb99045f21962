-- the largest groups of the latest search
select group_id, count(*) as images from match_groups group by group_id order by images desc limit 10;
