SELECT CAST(date_trunc(%(date_trunc_1)s::VARCHAR, CAST(usage_rollup_day.day AS TIMESTAMP WITHOUT TIME ZONE)) AS DATE) AS k, coalesce(sum(usage_rollup_day.sum), %(coalesce_1)s::INTEGER) AS value 
FROM usage_rollup_day 
WHERE usage_rollup_day.metric_id = %(metric_id_1)s::BIGINT AND usage_rollup_day.day >= %(window_start)s::DATE AND usage_rollup_day.day < %(window_end)s::DATE GROUP BY k ORDER BY k
