-- A job's summary (jobapi.services.summary): what it fetched, what failed and why,
-- and the same per site. A page's host is read from its final URL (the netloc:
-- the name, and the port when it is not the scheme's); the service folds hosts
-- into sites as the job's scope groups them.

-- name: summary_status_classes
SELECT CASE WHEN status = 0 THEN 'failed' ELSE (status / 100)::text || 'xx' END, count(*)
FROM pages WHERE job_id = %s GROUP BY 1;

-- How the pages of a recrawl compare with the job it recrawls (`pages.change`);
-- `gone`: the pages of that job the recrawl has no row for.
-- name: summary_changes
SELECT change, count(*) FROM pages WHERE job_id = %(job)s AND change IS NOT NULL GROUP BY 1
UNION ALL
SELECT 'gone', count(*) FROM pages p
WHERE p.job_id = %(previous)s
  AND NOT EXISTS (SELECT 1 FROM pages q WHERE q.job_id = %(job)s AND q.url = p.url);

-- Redirect hops the crawl followed (each lands on a page counted in the classes).
-- name: summary_redirects
SELECT count(*) FROM redirects WHERE job_id = %s;

-- name: summary_errors
SELECT CASE WHEN status = 0 THEN split_part(error, ': ', 1) ELSE 'http_' || status END,
       count(*), (array_agg(url ORDER BY url))[1], (array_agg(error ORDER BY url))[1]
FROM pages WHERE job_id = %s AND (status = 0 OR status >= 400)
GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT %s;

-- name: summary_robots
SELECT decision, robots_status, count(*), min(url)
FROM robots_decisions WHERE job_id = %s
GROUP BY 1, 2 ORDER BY 3 DESC, 1 LIMIT 10;

-- name: summary_events
SELECT kind, count(*), min(url), min(detail)
FROM crawl_events WHERE job_id = %s
GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 20;

-- Pages by host and status class (the classes of summary_status_classes).
-- name: summary_host_classes
SELECT lower(substring(final_url FROM '^[A-Za-z][A-Za-z0-9+.-]*://(?:[^@/?#]*@)?([^/?#]*)')),
       CASE WHEN status = 0 THEN 'failed' ELSE (status / 100)::text || 'xx' END, count(*)
FROM pages WHERE job_id = %s GROUP BY 1, 2;

-- What robots.txt did to each host: URLs it kept out (`disallowed` by a rule,
-- `unavailable` while it answered 5xx) and fetches of it that failed
-- (`unreachable`: no answer; `error`: a 5xx).
-- name: summary_host_robots
SELECT host, decision, count(*) FROM robots_decisions WHERE job_id = %(job)s GROUP BY 1, 2
UNION ALL
SELECT host, CASE WHEN coalesce(status, 0) = 0 THEN 'unreachable' ELSE 'error' END, count(*)
FROM crawl_events WHERE job_id = %(job)s AND kind = 'robots_unavailable' GROUP BY 1, 2;
