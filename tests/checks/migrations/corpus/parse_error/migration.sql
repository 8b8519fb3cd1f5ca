ALTER TABL documents ADD COLUMN x text;
