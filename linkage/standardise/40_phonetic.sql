-- Records with their phonetic codes, looked up from std_name_metaphone (one row per
-- distinct name, filled in Python by runner.py). The final SELECT reads this view.
CREATE OR REPLACE TEMP VIEW std_record_coded AS
SELECT
    record.*,
    forename_code.metaphone AS forename_metaphone,
    surname_code.metaphone AS surname_metaphone
FROM std_record AS record
LEFT JOIN std_name_metaphone AS forename_code
    ON forename_code.name = record.forename
LEFT JOIN std_name_metaphone AS surname_code
    ON surname_code.name = record.surname;
