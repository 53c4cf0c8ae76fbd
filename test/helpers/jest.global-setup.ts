// Once before every suite of a jest run.
import { reserveTemplateFolder } from './pglite-template';

export default reserveTemplateFolder;
